"""A run's progress, reduced from its events in whatever order they arrive.

Kafka orders events only within one topic's partition, and `watch` reads a dozen topics, so a
late `eval.progress` may follow its `eval.done`: every step only ever moves forward, and a
redelivered event (same id) is applied once.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from flywheel_contracts import events as ev
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.run_config import CandidateConfig, EvalType, RunConfig


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


# A failure outranks success: a candidate whose deployment failed stays failed, whether its
# nim.down is read before or after its nim.failed.
_RANK = {Status.PENDING: 0, Status.RUNNING: 1, Status.DONE: 2, Status.FAILED: 3}


@dataclass
class Step:
    """One progress bar. `percent` None while the stage reports no progress of its own."""

    status: Status = Status.PENDING
    percent: float | None = None
    detail: str = ""

    def advance(self, status: Status, percent: float | None = None, detail: str = "") -> bool:
        """Move to `status` unless that would go back; returns whether anything changed.

        Within one status only a running step moves, and only forward.
        """
        rank, current = _RANK[status], _RANK[self.status]
        if rank < current:
            return False
        if rank == current and (
            status is not Status.RUNNING or (percent or 0.0) < (self.percent or 0.0)
        ):
            return False
        before = (self.status, self.percent, self.detail)
        self.status = status
        if percent is not None:
            self.percent = percent
        self.detail = detail or self.detail
        return before != (self.status, self.percent, self.detail)


@dataclass
class CandidateProgress:
    deployment: Step = field(default_factory=Step)
    customization: Step | None = None
    """None for a candidate without LoRA training."""
    evaluations: dict[EvalType, Step] = field(default_factory=dict)

    def evaluation(self, eval_type: EvalType) -> Step:
        return self.evaluations.setdefault(eval_type, Step())

    def training(self) -> Step:
        if self.customization is None:
            self.customization = Step()
        return self.customization


@dataclass
class RunProgress:
    """Everything `watch` shows and `report` prints about one run."""

    run_id: UUID
    requested: ev.RunRequested | None = None
    dataset: Step = field(default_factory=Step)
    candidates: dict[str, CandidateProgress] = field(default_factory=dict)
    cancelled: ev.RunCancelled | None = None
    outcome: Envelope[Any] | None = None
    """The terminal event, run.completed or run.failed (the first, should both exist)."""
    reclaimed: int = 0
    _seen: set[UUID] = field(default_factory=set, repr=False)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def completed(self) -> ev.RunCompleted | None:
        payload = None if self.outcome is None else self.outcome.payload
        return payload if isinstance(payload, ev.RunCompleted) else None

    @property
    def failed(self) -> ev.RunFailed | None:
        payload = None if self.outcome is None else self.outcome.payload
        return payload if isinstance(payload, ev.RunFailed) else None

    def apply(self, envelope: Envelope[Any]) -> bool:
        """Fold one of the run's events in; returns whether the progress changed."""
        if envelope.run_id != self.run_id or envelope.event_id in self._seen:
            return False
        self._seen.add(envelope.event_id)
        return self._apply(envelope)

    def candidate(self, model: str) -> CandidateProgress:
        return self.candidates.setdefault(model, CandidateProgress())

    def _apply(self, envelope: Envelope[Any]) -> bool:
        payload = envelope.payload
        match payload:
            case ev.RunRequested():
                self.requested = payload
                self.dataset.advance(Status.RUNNING, detail="building datasets")
                return True
            case ev.DatasetReady(context=context, counts=counts, stats=stats):
                self._plan(context.config)
                detail = (
                    f"eval {counts.eval} · icl {counts.icl} · train {counts.train} · "
                    f"val {counts.val} ({stats.selected} of {stats.fetched} records)"
                )
                self.dataset.advance(Status.DONE, 100.0, detail)
                return True
            case ev.DatasetFailed(reason=reason, message=message):
                return self.dataset.advance(Status.FAILED, detail=f"{reason}: {message}")
            case ev.NimUp(candidate=candidate, deployment=deployment, context=context):
                self._plan(context.config)
                self._plan_candidate(candidate, context.config)
                return self.candidate(candidate.model_name).deployment.advance(
                    Status.RUNNING, 100.0, f"serving at {deployment.base_url}"
                )
            case ev.NimFailed(candidate_model=model, reason=reason, message=message):
                step = self.candidate(model).deployment
                return step.advance(Status.FAILED, detail=f"{reason}: {message}")
            case ev.NimDown(candidate_model=model, reason=reason, deployment_seconds=seconds):
                step = self.candidate(model).deployment
                return step.advance(Status.DONE, 100.0, f"{reason} after {seconds:.0f}s")
            case ev.CustomizationStarted(candidate_model=model, job_id=job):
                step = self.candidate(model).training()
                return step.advance(Status.RUNNING, 0.0, f"job {job}")
            case ev.CustomizationProgress(candidate_model=model, percent=percent):
                step = self.candidate(model).training()
                return step.advance(Status.RUNNING, percent, _training_detail(payload))
            case ev.CustomizationDone(candidate_model=model):
                step = self.candidate(model).training()
                if payload.error is not None:
                    detail = f"{payload.error.kind}: {payload.error.message}"
                    return step.advance(Status.FAILED, detail=detail)
                return step.advance(Status.DONE, 100.0, f"{payload.customized_model}")
            case ev.EvalStarted(candidate_model=model, eval_type=eval_type, job_id=job):
                step = self.candidate(model).evaluation(eval_type)
                return step.advance(Status.RUNNING, 0.0, f"job {job}")
            case ev.EvalProgress(candidate_model=model, eval_type=eval_type, percent=percent):
                step = self.candidate(model).evaluation(eval_type)
                return step.advance(Status.RUNNING, percent)
            case ev.EvalDone(candidate_model=model, eval_type=eval_type):
                step = self.candidate(model).evaluation(eval_type)
                if payload.error is not None:
                    detail = f"{payload.error.kind}: {payload.error.message}"
                    return step.advance(Status.FAILED, detail=detail)
                scores = ", ".join(f"{s.name} {s.value:.2f}" for s in payload.scores)
                return step.advance(Status.DONE, 100.0, scores)
            case ev.RunCancelled():
                self.cancelled = payload
                return True
            case ev.RunCompleted() | ev.RunFailed():
                if self.outcome is not None:
                    return False
                self.outcome = envelope
                return True
            case ev.ResourcesReclaimed(reclaimed=reclaimed):
                self.reclaimed += len(reclaimed)
                return bool(reclaimed)
        return False

    def _plan(self, config: RunConfig) -> None:
        """Show every candidate and evaluation the run will have before its events arrive."""
        for candidate in config.candidates:
            self._plan_candidate(candidate, config)

    def _plan_candidate(self, candidate: CandidateConfig, config: RunConfig) -> None:
        progress = self.candidate(candidate.model_name)
        for eval_type in config.evaluation.eval_types:
            if eval_type is not EvalType.CUSTOMIZED or candidate.customization_enabled:
                progress.evaluation(eval_type)
        if candidate.customization_enabled:
            progress.training()


def _training_detail(progress: ev.CustomizationProgress) -> str:
    parts = [f"epoch {progress.epochs_completed}", f"step {progress.steps_completed}"]
    if progress.train_loss is not None:
        parts.append(f"loss {progress.train_loss:.3f}")
    return ", ".join(parts)
