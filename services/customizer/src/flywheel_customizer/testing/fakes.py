"""In-memory fakes of the customizer's ports, for unit tests of its logic.

`FakeTraining` plays NMP's job lifecycle from a script of status answers, so a test can make a
job wait for GPUs, stall, fail or vanish; `RecordedNmp` (contracts) covers the wire format.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import AutoReconnect

from flywheel_contracts.runtime.nmp import CustomizationStatus, NmpNotFound, NmpRetryableError
from flywheel_contracts.runtime.testing import FakeLease as FakeLease
from flywheel_contracts.runtime.testing import RecordedEvents as RecordedEvents
from flywheel_customizer.jobs import CustomizationRecord, Phase
from flywheel_customizer.ports import JobRequest, SubmittedJob

StatusAnswer = Mapping[str, Any]

RUNNING_HALF: StatusAnswer = {
    "status": "running",
    "percentage_done": 50.0,
    "epochs_completed": 1,
    "steps_completed": 10,
}
COMPLETED: StatusAnswer = {
    "status": "completed",
    "percentage_done": 100.0,
    "epochs_completed": 2,
    "steps_completed": 20,
}


@dataclass
class FakeJob:
    id: str
    request: JobRequest
    output_model: str
    script: list[StatusAnswer]
    polls: int = 0
    cancelled: bool = False


@dataclass
class FakeTraining:
    """Jobs answer their `script` one poll at a time; the last answer repeats."""

    script: list[StatusAnswer] = field(default_factory=lambda: [RUNNING_HALF, COMPLETED])
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    served: set[str] = field(default_factory=set)
    sync_after_completion: bool = True
    cancels: list[str] = field(default_factory=list)
    lookups: int = 0
    lose_next_answer: bool = False
    """The next submit creates its job but raises as a read timeout would."""
    refuse_submit: Exception | None = None
    down: bool = False

    @property
    def submits(self) -> int:
        return len(self.jobs)

    async def find_job(self, name: str) -> SubmittedJob | None:
        self._check_up()
        self.lookups += 1
        for job in self.jobs.values():
            if job.request.name == name:
                return SubmittedJob(job.id, job.output_model)
        return None

    async def submit(self, request: JobRequest) -> SubmittedJob:
        self._check_up()
        if self.refuse_submit is not None:
            raise self.refuse_submit
        job_id = f"cust-{len(self.jobs) + 1:06d}"
        model = request.candidate.model_name.replace("/", "-")
        job = FakeJob(job_id, request, f"dfwbp/customized-{model}@{job_id}", list(self.script))
        self.jobs[job_id] = job
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise NmpRetryableError("POST /v1/customization/jobs failed: ReadTimeout")
        return SubmittedJob(job.id, job.output_model)

    async def status(self, job_id: str) -> CustomizationStatus:
        self._check_up()
        job = self.jobs.get(job_id)
        if job is None:
            raise NmpNotFound(f"customization job {job_id} not found")
        if job.cancelled:
            return CustomizationStatus(status="cancelled")
        answer = job.script[min(job.polls, len(job.script) - 1)]
        job.polls += 1
        if answer["status"] == "completed" and self.sync_after_completion:
            self.served.add(job.output_model)
        return CustomizationStatus.model_validate(answer)

    async def cancel(self, job_id: str) -> None:
        self._check_up()
        if job_id not in self.jobs:
            return  # NMP confirms it gone
        self.jobs[job_id].cancelled = True
        self.cancels.append(job_id)

    async def served_models(self) -> frozenset[str]:
        self._check_up()
        return frozenset(self.served)

    def _check_up(self) -> None:
        if self.down:
            raise NmpRetryableError("connection refused")


class InMemoryCustomizations:
    """The repository's semantics on dicts; `break_save_into` fails the next save that moves a
    record into that phase, as a database outage (or a crash) at that moment would."""

    def __init__(self) -> None:
        self.records: dict[str, CustomizationRecord] = {}
        self.cancelled_runs: dict[str, str] = {}
        self.break_save_into: Phase | None = None

    async def add(self, record: CustomizationRecord) -> bool:
        if record.key in self.records:
            return False
        self.records[record.key] = record
        return True

    async def active(self) -> list[CustomizationRecord]:
        return [r for r in self.records.values() if not r.done_published]

    async def save(self, record: CustomizationRecord, *, expected: Phase) -> bool:
        if self.break_save_into is record.phase:
            self.break_save_into = None
            raise AutoReconnect("connection closed")
        if self.records[record.key].phase is not expected:
            return False
        self.records[record.key] = record
        return True

    async def cancel_run(self, run_id: str, reason: str) -> None:
        self.cancelled_runs.setdefault(run_id, reason)

    async def cancellations(self, run_ids: Iterable[str]) -> dict[str, str]:
        return {r: self.cancelled_runs[r] for r in run_ids if r in self.cancelled_runs}


def recorded_events() -> RecordedEvents:
    """The kit's event ports as the customizer's, recording what it publishes."""
    return RecordedEvents("customizer")
