"""What nim-manager remembers about runs and candidates (stored in Mongo, one document each)."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import (
    CustomizationDone,
    CustomizationError,
    DatasetFailed,
    DatasetReady,
    DeploymentRole,
    EvalDone,
    EvalError,
    RunCancelled,
)
from flywheel_contracts.run_config import CandidateConfig, EvalType


class Phase(StrEnum):
    """A candidate's way through the scheduler; only the active scheduler changes it."""

    QUEUED = "queued"
    """Waiting for GPUs."""
    DEPLOYING = "deploying"
    """GPUs granted; the deployment is being created, started and synced."""
    UP = "up"
    """Serving (nim.up published) until its work is done."""
    REMOVING = "removing"
    """The deployment is being deleted; its GPUs are held until it is gone."""
    DOWN = "down"
    """Removed after serving (nim.down published)."""
    FAILED = "failed"
    """Never served (nim.failed published); nothing of it is left in NMP."""
    DROPPED = "dropped"
    """Cancelled while queued: it never held GPUs."""

    @property
    def holds_gpus(self) -> bool:
        return self in _HOLDING

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_HOLDING = frozenset({Phase.DEPLOYING, Phase.UP, Phase.REMOVING})
_TERMINAL = frozenset({Phase.DOWN, Phase.FAILED, Phase.DROPPED})


class WorkItem(StrEnum):
    """A piece of work a deployed candidate serves; the values are Mongo field names."""

    BASE_EVAL = "eval_base"
    ICL_EVAL = "eval_icl"
    CUSTOMIZED_EVAL = "eval_customized"
    CUSTOMIZATION = "customization"

    @classmethod
    def evaluation(cls, eval_type: EvalType) -> "WorkItem":
        return cls(f"eval_{eval_type.value}")


class EndReason(StrEnum):
    """Why a candidate's deployment ends (mapped to nim.down or nim.failed reasons)."""

    FINISHED = "finished"
    CANCELLED = "cancelled"
    DEPLOY_FAILED = "deploy_failed"
    DEPLOY_TIMED_OUT = "deploy_timed_out"
    WORK_TIMED_OUT = "work_timed_out"
    INSUFFICIENT_GPUS = "insufficient_gpus"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Ending(_Record):
    reason: EndReason
    message: str


class WorkOutcome(_Record):
    """How one piece of work ended, as reported by the evaluator or the customizer."""

    ok: bool
    error: str | None = None
    evaluation: EvalDone | None = Field(default=None, description="Scores and usage of an eval.")
    customized_model: str | None = Field(
        default=None, description="The model id a successful customization produced."
    )

    @classmethod
    def of_eval(cls, done: EvalDone) -> "WorkOutcome":
        return cls(ok=done.ok, error=_describe(done.error), evaluation=done)

    @classmethod
    def of_customization(cls, done: CustomizationDone) -> "WorkOutcome":
        return cls(ok=done.ok, error=_describe(done.error), customized_model=done.customized_model)


def _describe(error: EvalError | CustomizationError | None) -> str | None:
    return f"{error.kind.value}: {error.message}" if error is not None else None


class CandidateRecord(_Record):
    """One candidate of one run: its place in the queue, its deployment, the work it served.
    The run's own judge, when nim-manager deploys one, is a record of role `judge`: it goes
    through the same queue, budget and phases, and serves until every candidate has ended."""

    run_id: UUID
    model: str
    role: DeploymentRole = DeploymentRole.CANDIDATE
    index: int = Field(description="Position in the run's candidate list (-1: the judge).")
    candidate: CandidateConfig
    eval_types: tuple[EvalType, ...]
    deployment_name: str
    queued_at: datetime
    phase: Phase = Phase.QUEUED
    granted_at: datetime | None = None
    granted_by: str | None = Field(default=None, description="Scheduler instance that granted.")
    created: bool = Field(default=False, description="The deployment was requested from NMP.")
    up_at: datetime | None = None
    ending: Ending | None = None
    ended_at: datetime | None = None
    outcomes: dict[WorkItem, WorkOutcome] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return candidate_key(self.run_id, self.discriminator)

    @property
    def discriminator(self) -> str:
        """What tells this record's events and document from its run's others: the model, or
        for the judge `judge:<model>` (a run may also evaluate the judge's model)."""
        return self.model if self.is_candidate else f"{JUDGE_PREFIX}{self.model}"

    @property
    def is_candidate(self) -> bool:
        return self.role is DeploymentRole.CANDIDATE

    @property
    def served(self) -> bool:
        return self.up_at is not None

    @property
    def gpus(self) -> int:
        """GPUs the candidate takes from the budget: its deployment's and, until its
        customization is done, its training job's. The job runs on the same cluster while the
        candidate is deployed, so a budget that counted deployments alone would let training
        push the cluster past it (or wait for GPUs the deployments hold)."""
        if self.external:
            return 0
        return self.candidate.gpus + (self.candidate.customization_gpus if self.training else 0)

    @property
    def external(self) -> bool:
        """Reached at an endpoint of its own: never deployed, never removed from NMP."""
        return self.candidate.external

    @property
    def training(self) -> bool:
        """Whether a training job may still run for the candidate."""
        return self.candidate.customization_enabled and WorkItem.CUSTOMIZATION not in self.outcomes

    @property
    def deployment_seconds(self) -> float | None:
        if self.granted_at is None or self.ended_at is None:
            return None
        return max((self.ended_at - self.granted_at).total_seconds(), 0.0)


JUDGE_PREFIX = "judge:"


def candidate_key(run_id: UUID, model: str) -> str:
    return f"{run_id}:{model}"


@dataclass(frozen=True)
class RunRecord:
    """The inputs that decide a run's course, kept whole so derived events can name their
    cause, and whether its terminal event was published."""

    run_id: UUID
    ready: Envelope[DatasetReady] | None = None
    cancelled: Envelope[RunCancelled] | None = None
    dataset_failed: Envelope[DatasetFailed] | None = None
    finished: bool = False

    @property
    def stopping(self) -> Envelope[Any] | None:
        """The event that stops the run early, if one arrived."""
        return self.cancelled or self.dataset_failed
