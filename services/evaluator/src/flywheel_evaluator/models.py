"""The evaluator's own records: evaluation jobs (what to evaluate, where it stands) and the
per-record detail of an evaluation. Both are what the repository stores."""

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from flywheel_contracts.events import DatasetRef, EvalDone
from flywheel_contracts.run_config import EvalType, ExternalEndpoint, WorkloadType
from flywheel_contracts.runtime.clock import Clock as Clock  # the kit's
from flywheel_evaluator.dialects import Dialect

_EVALUATION_IDS = UUID("0c2f3f5e-3b9b-4f53-9d0e-6b1f6f0d4e21")


def evaluation_id(run_id: UUID, candidate_model: str, eval_type: EvalType) -> str:
    """The one id of an evaluation: a redelivered or repeated trigger finds the same job."""
    return "eval-" + uuid5(_EVALUATION_IDS, f"{run_id}\x1f{candidate_model}\x1f{eval_type}").hex


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    """Ended with scores or an error; `outcome` holds the eval.done payload."""
    CANCELLED = "cancelled"
    """Stopped by run.cancelled; `outcome` holds an eval.done with a cancelled error."""


TERMINAL = (JobStatus.FINISHED, JobStatus.CANCELLED)


class EvaluationJob(BaseModel):
    """One evaluation of one candidate in one way (base, icl or customized)."""

    model_config = ConfigDict(frozen=True)

    id: str
    run_id: UUID
    candidate_model: str
    eval_type: EvalType
    target_model: str = Field(description="Model id sent in requests (the adapter if customized).")
    base_url: str = Field(description="OpenAI-compatible base URL serving target_model.")
    dataset: DatasetRef
    workload_type: WorkloadType
    judge_model: str | None
    timeout_seconds: int
    limit: int
    endpoint: ExternalEndpoint | None = Field(
        default=None,
        description="An external candidate's endpoint (nim.up's `candidate.endpoint`): its key "
        "name, headers, concurrency and timeout. Set only for external candidates, which the "
        "native backend evaluates whatever the configured backend.",
    )
    tool_schema_compat: bool = Field(
        default=False,
        description="The run's `evaluation.tool_schema_compat`: rewrite the tools' `pattern`s.",
    )
    cause: str = Field(description="The triggering envelope, encoded; derived event ids use it.")
    status: JobStatus = JobStatus.PENDING
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    nmp_job_id: str | None = None
    progress_bucket: int = 0
    started_published: bool = False
    outcome: dict[str, Any] | None = None
    published: bool = False
    attempts: int = 0
    owner: str | None = None
    lease_until: datetime | None = None

    @property
    def external(self) -> bool:
        return self.endpoint is not None

    @property
    def done(self) -> EvalDone | None:
        return EvalDone.model_validate(self.outcome) if self.outcome is not None else None


class RecordResult(BaseModel):
    """What one eval record gave: the candidate's answer, its cost, and each metric's score
    (None where the request or the scoring failed, so the metric excludes the record)."""

    model_config = ConfigDict(frozen=True)

    index: int
    ok: bool = Field(description="The candidate answered (possibly after retries).")
    attempts: int = 0
    rate_limited: int = Field(default=0, description="429 answers waited out for this record.")
    error: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prediction: dict[str, Any] | None = Field(
        default=None, description="The candidate's message: content and tool_calls."
    )
    dialect: Dialect | None = Field(
        default=None,
        description="Tool calling: where the answer put its calls (dialects.py); None for a "
        "failed request or a generic workload.",
    )
    scores: dict[str, float | None] = Field(default_factory=dict)
    judge_reply: str | None = None
    judge_error: str | None = None
    icl_example_ids: list[str] | None = Field(
        default=None,
        description="ICL evaluations: the log-store ids of the training records whose examples "
        "the record's prompt held (the ICL dataset's `icl_example_ids`).",
    )
