"""The worker (a kit loop): claims evaluations from Mongo, runs them through the backend, and
records and publishes their outcomes.

A claim is a lease renewed while the evaluation runs. An instance that dies stops renewing, and
another (or its restart) takes the job over when the lease ends, resuming from what was saved:
the native backend's record details, the nmp backend's job id. A graceful stop releases its
leases so the takeover is immediate. An evaluation whose lease can no longer be renewed (it was
cancelled, or taken over) is aborted here.
"""

import asyncio
import contextlib
import functools
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

import structlog

from flywheel_contracts.events import EvalDone, EvalErrorKind, InFlightWork
from flywheel_contracts.runtime.clock import utc_now
from flywheel_evaluator.backends import Backend
from flywheel_evaluator.config import WorkerSettings
from flywheel_evaluator.errors import EvaluationFailed
from flywheel_evaluator.events import EvaluationEvents, failed, succeeded
from flywheel_evaluator.models import Clock, EvaluationJob, JobStatus, RecordResult
from flywheel_evaluator.outbox import Outbox
from flywheel_evaluator.repository import EvaluationRepository

_log = structlog.get_logger(__name__)


class JobLost(Exception):
    """The job is no longer this instance's running job (cancelled or taken over)."""


class _Context:
    """The JobContext of one claimed evaluation: every write is conditional on the claim."""

    def __init__(
        self,
        job: EvaluationJob,
        owner: str,
        repo: EvaluationRepository,
        events: EvaluationEvents,
        settings: WorkerSettings,
    ) -> None:
        self.job = job
        self._owner = owner
        self._repo = repo
        self._events = events
        self._step = settings.progress_step_percent
        self._job_id = job.nmp_job_id or job.id

    async def mark_started_at(self, at: datetime) -> None:
        await self._set(started_at=at)

    async def _set(self, **fields: object) -> None:
        if not await self._repo.set_fields(self.job.id, self._owner, **fields):
            raise JobLost(self.job.id)
        self.job = self.job.model_copy(update=fields)

    async def started(self, job_id: str) -> None:
        self._job_id = job_id
        if not self.job.started_published:
            await self._events.publish(self._events.started(self.job, job_id))
            await self._set(started_published=True)

    async def progress(self, done: int, total: int) -> None:
        percent = 100 * done / total if total else 0.0
        bucket = math.floor(percent / self._step) * self._step
        if self.job.progress_bucket < bucket < 100:
            await self._events.publish(self._events.progress(self.job, self._job_id, bucket))
            await self._set(progress_bucket=bucket)

    async def load_records(self) -> list[RecordResult]:
        return await self._repo.load_records(self.job.id)

    async def save_records(self, results: Sequence[RecordResult]) -> None:
        await self._repo.save_records(self.job, results)

    async def remember_nmp_job(self, nmp_job_id: str) -> None:
        self.job = self.job.model_copy(update={"nmp_job_id": nmp_job_id})
        await self._set(nmp_job_id=nmp_job_id)


class Worker:
    def __init__(
        self,
        repository: EvaluationRepository,
        backend: Backend,
        events: EvaluationEvents,
        outbox: Outbox,
        settings: WorkerSettings,
        *,
        owner: str,
        clock: Clock = utc_now,
    ) -> None:
        self._repo = repository
        self._backend = backend
        self._events = events
        self._outbox = outbox
        self._settings = settings
        self._owner = owner
        self._clock = clock
        self._lease = timedelta(seconds=settings.lease_s)
        self._running: dict[str, tuple[_Context, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A job was recorded: look for work now rather than at the next poll."""
        self._wake.set()

    async def abort_run(self, run_id: UUID) -> None:
        """Stop this instance's evaluations of `run_id` (their requests are cancelled)."""
        tasks = [task for ctx, task in self._running.values() if ctx.job.run_id == run_id]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def in_flight(self) -> list[InFlightWork]:
        return [
            InFlightWork(
                run_id=ctx.job.run_id,
                kind="evaluation_job",
                resource_id=ctx.job.nmp_job_id or ctx.job.id,
            )
            for ctx, _ in self._running.values()
        ]

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    await self._outbox.flush()
                    await self._claim_free_slots()
                except Exception as exc:  # Mongo or Kafka away: try again next cycle
                    _log.warning("worker.cycle_failed", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_s)
                self._wake.clear()
        finally:
            await self._stop()

    async def _claim_free_slots(self) -> None:
        while len(self._running) < self._settings.max_concurrent:
            job = await self._repo.claim(self._owner, self._clock(), self._lease)
            if job is None:
                return
            ctx = _Context(job, self._owner, self._repo, self._events, self._settings)
            task = asyncio.create_task(self._drive(ctx), name=f"evaluation {job.id}")
            self._running[job.id] = (ctx, task)
            task.add_done_callback(functools.partial(self._forget, job.id))

    def _forget(self, job_id: str, _task: "asyncio.Task[None]") -> None:
        self._running.pop(job_id, None)

    async def _stop(self) -> None:
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.shield(self._repo.release(self._owner))
        except Exception as exc:  # the leases then simply run out
            _log.warning("worker.release_failed", error=str(exc))

    async def _drive(self, ctx: _Context) -> None:
        job = ctx.job
        with structlog.contextvars.bound_contextvars(
            run_id=str(job.run_id), evaluation_id=job.id, eval_type=job.eval_type.value
        ):
            heartbeat = asyncio.create_task(self._heartbeat(ctx, asyncio.current_task()))
            try:
                outcome = await self._outcome(ctx)
                finished = await self._repo.finish(
                    job.id, self._owner, outcome.model_dump(mode="json"), self._clock()
                )
                # A finished job has no lease left to renew: a renewal would fail and cancel the
                # publishing of its own outcome (which the outbox would then publish again).
                heartbeat.cancel()
                if finished:
                    _log.info(
                        "evaluation.finished", ok=outcome.ok, runtime_s=outcome.runtime_seconds
                    )
                    await self._outbox.flush(job.run_id)
            except JobLost:
                await self._lost(ctx)
            except asyncio.CancelledError:
                _log.info("evaluation.stopped")
                raise
            except Exception:
                # The lease runs out and the job is tried again, up to max_attempts claims.
                _log.exception("evaluation.crashed", attempt=job.attempts)
            finally:
                heartbeat.cancel()

    async def _outcome(self, ctx: _Context) -> EvalDone:
        if ctx.job.attempts > self._settings.max_attempts:
            message = f"gave up after {self._settings.max_attempts} attempts"
            return failed(ctx.job, EvalErrorKind.INTERNAL_ERROR, message, self._clock())
        if ctx.job.started_at is None:
            await ctx.mark_started_at(self._clock())
        _log.info("evaluation.running", attempt=ctx.job.attempts)
        started_at = ctx.job.started_at or self._clock()
        deadline = started_at + timedelta(seconds=ctx.job.timeout_seconds)
        remaining = max(0.0, (deadline - self._clock()).total_seconds())
        try:
            async with asyncio.timeout(remaining) as budget:
                evaluated = await self._backend.evaluate(ctx)
        except TimeoutError:
            if not budget.expired():
                raise
            await self._abandon(ctx.job)
            message = f"not finished within {ctx.job.timeout_seconds} s"
            return failed(ctx.job, EvalErrorKind.TIMED_OUT, message, self._clock())
        except EvaluationFailed as exc:
            _log.warning("evaluation.failed", kind=exc.kind.value, error=exc.message)
            return failed(ctx.job, exc.kind, exc.message, self._clock())
        return succeeded(ctx.job, evaluated, self._clock())

    async def _heartbeat(self, ctx: _Context, task: "asyncio.Task[object] | None") -> None:
        interval = self._settings.lease_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                alive = await self._repo.renew(ctx.job.id, self._owner, self._clock() + self._lease)
            except Exception as exc:  # Mongo away: keep working, the lease may still hold
                _log.warning("evaluation.renew_failed", error=str(exc))
                continue
            if not alive and task is not None:
                _log.info("evaluation.claim_lost")
                task.cancel()
                return

    async def _lost(self, ctx: _Context) -> None:
        """The claim went away. A cancelled job's NMP job may have been launched after the
        cancel looked for it, so it is deleted here; a job taken over is left to its owner."""
        current = await self._repo.get(ctx.job.id)
        _log.info("evaluation.lost", status=current.status.value if current else None)
        if current is not None and current.status is JobStatus.CANCELLED:
            await self._abandon(ctx.job)

    async def _abandon(self, job: EvaluationJob) -> None:
        try:
            await self._backend.abandon(job)
        except Exception as exc:
            _log.warning("evaluation.abandon_failed", error=str(exc))
