"""How an evaluation is computed: the `native` backend scores the candidate's answers itself,
the `nmp` backend has NeMo Evaluator jobs do it. Both report through a JobContext."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from flywheel_contracts.events import MetricScore, UsageStats
from flywheel_evaluator.models import EvaluationJob, RecordResult


@dataclass(frozen=True)
class Evaluated:
    """A successful evaluation's figures."""

    job_id: str
    scores: tuple[MetricScore, ...]
    usage: UsageStats


class JobContext(Protocol):
    """What a backend may do besides computing: say it started, report progress, and keep
    the state that lets a restarted instance resume instead of starting over."""

    @property
    def job(self) -> EvaluationJob: ...

    async def started(self, job_id: str) -> None: ...

    async def progress(self, done: int, total: int) -> None: ...

    async def load_records(self) -> list[RecordResult]: ...

    async def save_records(self, results: Sequence[RecordResult]) -> None: ...

    async def remember_nmp_job(self, nmp_job_id: str) -> None: ...


class Backend(Protocol):
    async def evaluate(self, ctx: JobContext) -> Evaluated:
        """The scores and usage; EvaluationFailed when the evaluation cannot succeed."""
        ...

    async def abandon(self, job: EvaluationJob) -> None:
        """Release what the evaluation holds outside the evaluator (cancelled run)."""
        ...
