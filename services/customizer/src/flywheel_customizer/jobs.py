"""One customization as the customizer records it, and the pure decisions about it.

A record is keyed by run and candidate, so a redelivered `nim.up` finds the record it made the
first time. Its phase says what the reconciler does next:

    requested --(job found or created in NMP)--> training --(job completed)--> syncing
        \\                                           |                            |
         `------------------(outcome decided)--------+----------------------------+--> finished

`finished` records keep `done_published` false until `customization.done` is acknowledged.
"""

from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from flywheel_contracts.envelope import Envelope, restored, stored
from flywheel_contracts.events import (
    CustomizationError,
    CustomizationErrorKind,
    NimUp,
)
from flywheel_contracts.primitives import MESSAGE_MAX
from flywheel_contracts.runtime.nmp import CustomizationStatus
from flywheel_contracts.runtime.nmp.names import customization_job_name

NO_ERROR_DETAILS = "No error details available"
NOT_ENOUGH_RESOURCES = "NotEnoughResources"

# Statuses whose progress numbers mean something; `created`/`pending` report zeros.
_TRAINING_STATUSES = frozenset({"running", "completed"})


class Phase(StrEnum):
    REQUESTED = "requested"
    """`nim.up` recorded; no NMP job is known to the record (one may exist if a POST was sent)."""
    TRAINING = "training"
    """The NMP job id is recorded; its status is polled."""
    SYNCING = "syncing"
    """Training completed; waiting for the NIM proxy to serve the customized model."""
    FINISHED = "finished"
    """The outcome is decided and recorded."""


class Progress(BaseModel):
    """What the last status poll said."""

    model_config = ConfigDict(frozen=True)

    status: str
    percent: float = Field(ge=0, le=100)
    epochs: int = Field(ge=0)
    steps: int = Field(ge=0)

    @classmethod
    def of(cls, status: CustomizationStatus, previous: "Progress | None") -> "Progress":
        """The poll's progress. Outside training (`pending`, `failed` ...) NMP reports zeros,
        so the last training numbers are kept: a failed job still says how far it got."""
        if status.status not in _TRAINING_STATUSES and previous is not None:
            return previous.model_copy(update={"status": status.status})
        return cls(
            status=status.status,
            percent=min(max(float(status.percentage_done or 0.0), 0.0), 100.0),
            epochs=max(status.epochs_completed or 0, 0),
            steps=max(status.steps_completed or 0, 0),
        )

    def advances(self, previous: "Progress | None") -> bool:
        """Whether this poll is news for `customization.progress`: training numbers that moved
        forward. A number going backwards (a restarted pod) is not published, so consumers see
        progress only grow."""
        if self.status not in _TRAINING_STATUSES:
            return False
        if previous is None:
            return True
        now, before = (
            (self.percent, self.epochs, self.steps),
            (
                previous.percent,
                previous.epochs,
                previous.steps,
            ),
        )
        return now != before and all(a >= b for a, b in zip(now, before, strict=True))


class Outcome(BaseModel):
    """How a customization ended: a served model, or an error."""

    model_config = ConfigDict(frozen=True)

    customized_model: str | None = None
    error: CustomizationError | None = None

    @classmethod
    def failed(cls, kind: CustomizationErrorKind, message: str) -> "Outcome":
        return cls(error=CustomizationError(kind=kind, message=_bounded(message)))


class CustomizationRecord(BaseModel):
    """The Mongo document of one candidate's customization in one run."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    key: str = Field(alias="_id")
    run_id: str
    candidate_model: str
    job_name: str = Field(description="Deterministic NMP job name: the crash-recovery lookup key.")
    trigger: str = Field(description="The `nim.up` envelope: inputs, and cause of every event.")
    received_at: datetime
    phase: Phase = Phase.REQUESTED
    submit_attempted_at: datetime | None = Field(
        default=None,
        description="Set before the first job POST; once set, NMP may hold a job this record "
        "does not know, so it is looked up by name before any new POST.",
    )
    job_id: str | None = None
    output_model: str | None = None
    submitted_at: datetime | None = None
    started_published: bool = False
    progress: Progress | None = None
    changed_at: datetime = Field(description="Last observed change: the stall timer's start.")
    completed_at: datetime | None = None
    outcome: Outcome | None = None
    finished_at: datetime | None = None
    done_published: bool = False

    @classmethod
    def from_nim_up(cls, event: Envelope[NimUp], now: datetime) -> "CustomizationRecord":
        run_id = event.scoped_run_id
        model = event.payload.candidate.model_name
        return cls(
            key=record_key(run_id, model),
            run_id=str(run_id),
            candidate_model=model,
            job_name=job_name(run_id, event.payload.context.config.workload_id, model),
            trigger=stored(event),
            received_at=now,
            changed_at=now,
        )

    @cached_property
    def cause(self) -> Envelope[NimUp]:
        envelope: Envelope[NimUp] = restored(self.trigger)
        return envelope

    @property
    def nim_up(self) -> NimUp:
        return self.cause.payload

    @property
    def run_uuid(self) -> UUID:
        return UUID(self.run_id)

    def to_document(self) -> dict[str, Any]:
        """Native BSON types (datetimes stay datetimes; string enums encode as strings)."""
        return self.model_dump(by_alias=True)


def record_key(run_id: UUID, candidate_model: str) -> str:
    return f"{run_id}/{candidate_model}"


def name_scope(run_id: UUID, workload_id: str) -> str:
    """The shared NMP client names a job `customization-{workload}-{model}`, the blueprint's
    name, which repeats across runs. Scoping the workload part with the run id makes the name
    unique per run and candidate, which the crash-recovery lookup relies on."""
    return f"{workload_id}-{run_id.hex}"


def job_name(run_id: UUID, workload_id: str, candidate_model: str) -> str:
    return customization_job_name(name_scope(run_id, workload_id), candidate_model)


def failure_outcome(status: CustomizationStatus) -> Outcome:
    """A failed job's outcome. A job that never trained and was last waiting for GPUs failed for
    want of GPUs, not because training broke."""
    detail = status.error_detail or NO_ERROR_DETAILS
    never_ran = not (status.steps_completed or status.epochs_completed)
    starved = any(log.message == NOT_ENOUGH_RESOURCES for log in status.status_logs)
    kind = (
        CustomizationErrorKind.INSUFFICIENT_GPUS
        if never_ran and starved
        else CustomizationErrorKind.TRAINING_FAILED
    )
    return Outcome.failed(kind, detail)


def waiting_detail(status: CustomizationStatus) -> str:
    """Why NMP says the job is waiting for resources, in its own words."""
    last = status.status_logs[-1] if status.status_logs else None
    detail = last.detail if last is not None and last.detail else None
    return f"{NOT_ENOUGH_RESOURCES}: {detail}" if detail else NOT_ENOUGH_RESOURCES


def _bounded(message: str) -> str:
    return message[:MESSAGE_MAX] if message else NO_ERROR_DETAILS
