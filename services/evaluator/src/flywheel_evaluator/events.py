"""The events an evaluation produces, with ids derived from its trigger: however often a step
is repeated (redelivery, restart, takeover), it publishes the same event id.

- eval.started: when the evaluation starts (native) or its NMP job exists (nmp);
- eval.progress: each time progress crosses a step (10% by default), never at 100%;
- eval.done: exactly one per evaluation, with scores and usage or an error.
"""

from datetime import datetime
from typing import Any

from flywheel_contracts.envelope import Envelope, restored
from flywheel_contracts.events import EvalDone, EvalError, EvalErrorKind, EvalProgress, EvalStarted
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.primitives import MESSAGE_MAX
from flywheel_contracts.runtime.emitting import NewEvent, Publish
from flywheel_evaluator.backends import Evaluated
from flywheel_evaluator.models import EvaluationJob


class EvaluationEvents:
    """Builds and publishes one evaluation's events (ports: the kit's `NewEvent` and `Publish`)."""

    def __init__(self, new_event: NewEvent, publish: Publish) -> None:
        self._new_event = new_event
        self.publish = publish

    def _derived(
        self, job: EvaluationJob, payload: EventPayload, discriminator: str
    ) -> Envelope[Any]:
        return self._new_event(payload, cause=restored(job.cause), discriminator=discriminator)

    def started(self, job: EvaluationJob, job_id: str) -> Envelope[Any]:
        payload = EvalStarted(
            candidate_model=job.candidate_model,
            eval_type=job.eval_type,
            job_id=job_id,
            target_model=job.target_model,
        )
        return self._derived(job, payload, job.id)

    def progress(self, job: EvaluationJob, job_id: str, percent: int) -> Envelope[Any]:
        payload = EvalProgress(
            candidate_model=job.candidate_model,
            eval_type=job.eval_type,
            job_id=job_id,
            percent=percent,
        )
        return self._derived(job, payload, f"{job.id}:{percent}")

    def done(self, job: EvaluationJob) -> Envelope[Any]:
        payload = job.done
        if payload is None:
            raise ValueError(f"evaluation {job.id} has no outcome yet")
        return self._derived(job, payload, job.id)


def _runtime(job: EvaluationJob, now: datetime) -> float:
    return max(0.0, (now - job.started_at).total_seconds()) if job.started_at else 0.0


def succeeded(job: EvaluationJob, evaluated: Evaluated, now: datetime) -> EvalDone:
    return EvalDone(
        candidate_model=job.candidate_model,
        eval_type=job.eval_type,
        job_id=evaluated.job_id,
        target_model=job.target_model,
        scores=evaluated.scores,
        usage=evaluated.usage,
        runtime_seconds=_runtime(job, now),
    )


def failed(job: EvaluationJob, kind: EvalErrorKind, message: str, now: datetime) -> EvalDone:
    started = job.started_published or job.nmp_job_id is not None
    return EvalDone(
        candidate_model=job.candidate_model,
        eval_type=job.eval_type,
        job_id=job.nmp_job_id or (job.id if started else None),
        target_model=job.target_model,
        error=EvalError(kind=kind, message=(message or kind.value)[:MESSAGE_MAX]),
        runtime_seconds=_runtime(job, now),
    )
