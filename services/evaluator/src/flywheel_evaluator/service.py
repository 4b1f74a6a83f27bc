"""The evaluator's reactions to its inputs. Handlers only record jobs and outcomes in Mongo and
wake the worker, which runs the jobs and publishes the outcomes (the outbox): a handler never
waits on Kafka, so a slow broker cannot hold the consumer. Each returns in milliseconds:

- nim.up: the base (eval set) and ICL (ICL set) evaluations of the candidate; an external
  candidate's (`candidate.endpoint` set, no NMP deployment behind `deployment.base_url`) keep a
  copy of its endpoint, which makes them native evaluations with its key, headers and limits;
- customization.done: ok -> the customized evaluation (eval set, the adapter's model id);
  failed -> that evaluation ends at once with a customization_failed (or cancelled) error;
- run.cancelled: every live evaluation of the run ends as cancelled, its in-flight requests are
  aborted and its NMP job deleted; a trigger arriving later is recorded as cancelled too.

An evaluation id is a function of run, candidate and type, so a redelivered or repeated trigger
finds the existing job and never runs a finished evaluation again.
"""

from typing import Any, Protocol
from uuid import UUID

import structlog

from flywheel_contracts.envelope import Envelope, stored
from flywheel_contracts.events import (
    CustomizationDone,
    CustomizationErrorKind,
    DatasetContext,
    DatasetRef,
    DeploymentRef,
    DeploymentRole,
    EvalErrorKind,
    NimUp,
    RunCancelled,
)
from flywheel_contracts.run_config import EvalType, ExternalEndpoint
from flywheel_contracts.runtime.clock import utc_now
from flywheel_evaluator.backends import Backend
from flywheel_evaluator.events import failed
from flywheel_evaluator.models import Clock, EvaluationJob, JobStatus, evaluation_id
from flywheel_evaluator.ports import JobStore

_log = structlog.get_logger(__name__)


class WorkerControl(Protocol):
    def wake(self) -> None:
        """A job or an outcome was recorded: the worker looks for work, and publishes recorded
        outcomes, now."""

    async def abort_run(self, run_id: UUID) -> None:
        """Stop this instance's evaluations of the run."""


class EvaluatorService:
    def __init__(
        self,
        repository: JobStore,
        backend: Backend,
        worker: WorkerControl,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._repo = repository
        self._backend = backend
        self._worker = worker
        self._clock = clock

    # Triggers.

    async def on_nim_up(self, event: Envelope[NimUp]) -> None:
        up = event.payload
        if up.role is not DeploymentRole.CANDIDATE:
            _log.debug("nim_up.not_a_candidate", role=up.role.value)
            return
        datasets = up.context.datasets
        for eval_type, dataset in ((EvalType.BASE, datasets.eval), (EvalType.ICL, datasets.icl)):
            if eval_type in up.context.config.evaluation.eval_types:
                job = self._job(
                    event,
                    up.candidate.model_name,
                    eval_type,
                    up.deployment,
                    dataset,
                    up.context,
                    endpoint=up.candidate.endpoint,
                )
                await self._admit(job)

    async def on_customization_done(self, event: Envelope[CustomizationDone]) -> None:
        done = event.payload
        if EvalType.CUSTOMIZED not in done.context.config.evaluation.eval_types:
            _log.info("evaluation.not_requested", candidate=done.candidate_model, type="customized")
            return
        job = self._job(
            event,
            done.candidate_model,
            EvalType.CUSTOMIZED,
            done.deployment,
            done.context.datasets.eval,
            done.context,
            target_model=done.customized_model,
        )
        if done.error is None:
            await self._admit(job)
        else:
            cancelled = done.error.kind is CustomizationErrorKind.CANCELLED
            kind = EvalErrorKind.CANCELLED if cancelled else EvalErrorKind.CUSTOMIZATION_FAILED
            outcome = failed(
                job, kind, f"customization failed: {done.error.message}", self._clock()
            )
            await self._create_ended(job, JobStatus.FINISHED, outcome.model_dump(mode="json"))

    async def on_run_cancelled(self, event: Envelope[RunCancelled]) -> None:
        run_id = event.scoped_run_id
        now = self._clock()
        await self._repo.mark_run_cancelled(run_id, now)
        for job in await self._repo.live_jobs_of_run(run_id):
            outcome = failed(job, EvalErrorKind.CANCELLED, event.payload.reason, now)
            if await self._repo.cancel(job.id, outcome.model_dump(mode="json"), now):
                _log.info("evaluation.cancelled", evaluation_id=job.id)
                await self._release(job)
                self._worker.wake()
        await self._worker.abort_run(run_id)

    # Helpers.

    def _job(
        self,
        event: Envelope[Any],
        candidate: str,
        eval_type: EvalType,
        deployment: DeploymentRef,
        dataset: DatasetRef,
        context: DatasetContext,
        *,
        target_model: str | None = None,
        endpoint: ExternalEndpoint | None = None,
    ) -> EvaluationJob:
        run_id = event.scoped_run_id
        return EvaluationJob(
            id=evaluation_id(run_id, candidate, eval_type),
            run_id=run_id,
            candidate_model=candidate,
            eval_type=eval_type,
            target_model=target_model or deployment.model_id,
            base_url=deployment.base_url,
            dataset=dataset,
            workload_type=context.workload_type,
            judge_model=context.config.evaluation.judge_model,
            endpoint=endpoint,
            tool_schema_compat=context.config.evaluation.tool_schema_compat,
            timeout_seconds=context.config.evaluation.timeout_seconds,
            limit=context.config.split.limit,
            cause=stored(event),
            created_at=self._clock(),
        )

    async def _admit(self, job: EvaluationJob) -> None:
        """Record a new evaluation, or a cancelled one for a cancelled run; a repeat is a no-op."""
        if await self._repo.is_run_cancelled(job.run_id):
            outcome = failed(job, EvalErrorKind.CANCELLED, "the run was cancelled", self._clock())
            await self._create_ended(job, JobStatus.CANCELLED, outcome.model_dump(mode="json"))
            return
        if await self._repo.create(job):
            _log.info("evaluation.recorded", evaluation_id=job.id, type=job.eval_type.value)
            if await self._repo.is_run_cancelled(job.run_id):
                # run.cancelled (another topic, handled concurrently) came in between.
                outcome = failed(
                    job, EvalErrorKind.CANCELLED, "the run was cancelled", self._clock()
                )
                await self._repo.cancel(job.id, outcome.model_dump(mode="json"), self._clock())
            self._worker.wake()
        else:
            _log.info("evaluation.exists", evaluation_id=job.id, type=job.eval_type.value)

    async def _create_ended(
        self, job: EvaluationJob, status: JobStatus, outcome: dict[str, Any]
    ) -> None:
        ended = job.model_copy(
            update={"status": status, "outcome": outcome, "finished_at": self._clock()}
        )
        if await self._repo.create(ended):
            self._worker.wake()
        else:
            _log.info("evaluation.exists", evaluation_id=job.id, type=job.eval_type.value)

    async def _release(self, job: EvaluationJob) -> None:
        try:
            await self._backend.abandon(job)
        except Exception as exc:  # the janitor reclaims what is left; cancelling goes on
            _log.warning("evaluation.abandon_failed", evaluation_id=job.id, error=str(exc))
