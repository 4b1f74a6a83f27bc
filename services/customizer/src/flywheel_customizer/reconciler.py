"""The reconciler loop: drives every open customization from its Mongo record to
`customization.done`, one small step per pass, so a restarted instance resumes where the last
one stopped.

Never a second job for a run and candidate: only the lease holder acts; before its first POST a
record notes the attempt (`submit_attempted_at`), and a record with that note looks its job up
by its deterministic key (carried in the job's `custom_fields`) before any POST, so a crash between NMP's answer and the record's
update adopts the job that POST created instead of creating another.

Events are published before the record says they were: a crash in between re-publishes with
the same derived event id, which consumers drop as a duplicate.
"""

import asyncio
import contextlib
from datetime import datetime

import structlog

from flywheel_contracts.errors import PermanentError
from flywheel_contracts.events import (
    CustomizationDone,
    CustomizationErrorKind,
    CustomizationProgress,
    CustomizationStarted,
)
from flywheel_contracts.runtime.clock import Clock as Clock  # the kit's
from flywheel_contracts.runtime.clock import utc_now
from flywheel_contracts.runtime.emitting import Emit
from flywheel_contracts.runtime.logging import bound_fields
from flywheel_contracts.runtime.nmp import CustomizationStatus, NmpError, NmpNotFound
from flywheel_customizer.config import JobSettings
from flywheel_customizer.errors import LeaseLost
from flywheel_customizer.jobs import (
    CustomizationRecord,
    Outcome,
    Phase,
    Progress,
    failure_outcome,
    name_scope,
    waiting_detail,
)
from flywheel_customizer.ports import Customizations, JobRequest, Lease, Training

_log = structlog.get_logger(__name__)


class Reconciler:
    def __init__(
        self,
        store: Customizations,
        training: Training,
        emit: Emit,
        lease: Lease,
        settings: JobSettings,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._training = training
        self._emit = emit
        self._lease = lease
        self._tenure: int | None = None
        self._settings = settings
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Start the next pass now (new work or a cancellation arrived)."""
        self._wake.set()

    async def run_forever(self) -> None:
        try:
            while True:
                if await self._lease.hold() is not None:
                    await self.reconcile_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_s)
                self._wake.clear()
        finally:
            # Let a successor take over at once instead of after the lease expires.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._lease.release())

    async def reconcile_once(self) -> None:
        """One step for every open customization; a failing one never holds up the others."""
        self._tenure = self._lease.tenure  # the lease's fencing token as this pass begins
        records = await self._store.active()
        if not records:
            return
        cancelled = await self._store.cancellations({record.run_id for record in records})
        await asyncio.gather(
            *(self._advance_safely(record, cancelled.get(record.run_id)) for record in records)
        )

    async def _advance_safely(self, record: CustomizationRecord, cancel_reason: str | None) -> None:
        with bound_fields(
            run_id=record.run_id, candidate=record.candidate_model, job_id=record.job_id
        ):
            try:
                await self._advance(record, cancel_reason)
            except LeaseLost:
                _log.warning("customization.lease_lost", phase=record.phase.value)
            except Exception as exc:
                # Retryable or not, the next pass tries again: NMP or Kafka may be back by then,
                # and the stall and sync deadlines bound how long a job can stay stuck.
                _log.warning(
                    "customization.step_failed",
                    phase=record.phase.value,
                    error=f"{type(exc).__name__}: {exc}",
                )

    async def _advance(self, record: CustomizationRecord, cancel_reason: str | None) -> None:
        if record.phase is Phase.FINISHED:
            await self._publish_done(record)
            return
        if cancel_reason is not None:
            await self._cancel(record, cancel_reason)
            return
        if record.phase is Phase.REQUESTED:
            submitted = await self._submit(record)
            if submitted is None:
                return
            record = submitted
        if not record.started_published:
            record = await self._publish_started(record)
        if record.phase is Phase.TRAINING:
            await self._poll(record)
        elif record.phase is Phase.SYNCING:
            await self._await_sync(record)

    # --- requested -> training ------------------------------------------------------------------

    async def _submit(self, record: CustomizationRecord) -> CustomizationRecord | None:
        """The record with its job, or None when the customization ended before it had one."""
        request = _request(record)
        job = None
        if record.submit_attempted_at is not None:
            job = await self._training.find_job(request.name)
            if job is not None:
                _log.info("customization.job_adopted", job_id=job.id, job_name=request.name)
        if job is None:
            # Intent first: once this is stored, any later pass looks before it POSTs.
            record = await self._save(
                record.model_copy(update={"submit_attempted_at": self._clock()}),
                expected=Phase.REQUESTED,
            )
            # The lease may have lapsed during a slow pass, and another reconciler may have
            # driven this job meanwhile: POST only in the tenure the pass began in.
            if self._tenure is None or await self._lease.hold() != self._tenure:
                raise LeaseLost
            try:
                job = await self._training.submit(request)
            except PermanentError as exc:
                await self._finish(
                    record,
                    Outcome.failed(
                        CustomizationErrorKind.TRAINING_FAILED, f"NMP refused the job: {exc}"
                    ),
                )
                return None
            _log.info("customization.job_created", job_id=job.id, job_name=request.name)
        now = self._clock()
        return await self._save(
            record.model_copy(
                update={
                    "phase": Phase.TRAINING,
                    "job_id": job.id,
                    "output_model": job.output_model,
                    "submitted_at": now,
                    "changed_at": now,
                }
            ),
            expected=Phase.REQUESTED,
        )

    async def _publish_started(self, record: CustomizationRecord) -> CustomizationRecord:
        assert record.job_id is not None and record.output_model is not None
        await self._emit(
            CustomizationStarted(
                candidate_model=record.candidate_model,
                job_id=record.job_id,
                output_model=record.output_model,
            ),
            cause=record.cause,
        )
        return await self._save(
            record.model_copy(update={"started_published": True}), expected=record.phase
        )

    # --- training ---------------------------------------------------------------------------

    async def _poll(self, record: CustomizationRecord) -> None:
        assert record.job_id is not None
        try:
            status = await self._training.status(record.job_id)
        except NmpNotFound:
            await self._finish(
                record,
                Outcome.failed(
                    CustomizationErrorKind.INTERNAL_ERROR,
                    f"customization job {record.job_id} no longer exists in NMP",
                ),
            )
            return
        except NmpError as exc:
            # Unreadable for longer than a stall may last: give up as on a stall, cancelling on
            # a best-effort basis (the janitor reclaims what this cannot reach).
            unchanged_s = (self._clock() - record.changed_at).total_seconds()
            if unchanged_s <= self._settings.stall_timeout_s:
                raise
            with contextlib.suppress(NmpError):
                await self._cancel_job(record.job_id)
            await self._finish(
                record,
                Outcome.failed(
                    CustomizationErrorKind.STALLED,
                    f"job status unreadable for {unchanged_s:.0f}s: {exc}",
                ),
            )
            return
        now = self._clock()
        record = await self._observe(record, Progress.of(status, record.progress), now)
        if status.status == "completed":
            syncing = await self._save(
                record.model_copy(update={"phase": Phase.SYNCING, "completed_at": now}),
                expected=Phase.TRAINING,
            )
            await self._await_sync(syncing)
        elif status.status == "failed":
            await self._finish(record, failure_outcome(status))
        elif status.status == "cancelled":
            await self._finish(
                record,
                Outcome.failed(
                    CustomizationErrorKind.CANCELLED, "the job was cancelled in NMP, not by a run"
                ),
            )
        else:
            await self._check_deadlines(record, status, now)

    async def _observe(
        self, record: CustomizationRecord, observed: Progress, now: datetime
    ) -> CustomizationRecord:
        """Publish progress that moved forward; note any change, which restarts the stall timer."""
        if observed == record.progress:
            return record
        if observed.advances(record.progress):
            assert record.job_id is not None
            await self._emit(
                CustomizationProgress(
                    candidate_model=record.candidate_model,
                    job_id=record.job_id,
                    percent=observed.percent,
                    epochs_completed=observed.epochs,
                    steps_completed=observed.steps,
                ),
                cause=record.cause,
                discriminator=f"{observed.percent}:{observed.epochs}:{observed.steps}",
            )
        return await self._save(
            record.model_copy(update={"progress": observed, "changed_at": now}),
            expected=record.phase,
        )

    async def _check_deadlines(
        self, record: CustomizationRecord, status: CustomizationStatus, now: datetime
    ) -> None:
        unchanged_s = (now - record.changed_at).total_seconds()
        if status.waiting_for_resources:
            if unchanged_s > self._settings.gpu_wait_timeout_s:
                await self._give_up(
                    record,
                    CustomizationErrorKind.INSUFFICIENT_GPUS,
                    f"no GPUs for {unchanged_s:.0f}s: {waiting_detail(status)}",
                )
        elif unchanged_s > self._settings.stall_timeout_s:
            await self._give_up(
                record,
                CustomizationErrorKind.STALLED,
                f"no progress for {unchanged_s:.0f}s (status {status.status}, "
                f"{status.percentage_done or 0:g}% done)",
            )

    async def _give_up(
        self, record: CustomizationRecord, kind: CustomizationErrorKind, message: str
    ) -> None:
        assert record.job_id is not None
        await self._cancel_job(record.job_id)  # frees its GPUs or its place in the queue
        await self._finish(record, Outcome.failed(kind, message))

    # --- syncing ----------------------------------------------------------------------------

    async def _await_sync(self, record: CustomizationRecord) -> None:
        assert record.output_model is not None and record.completed_at is not None
        waited_s = (self._clock() - record.completed_at).total_seconds()
        overdue = waited_s > self._settings.model_sync_timeout_s
        try:
            served = record.output_model in await self._training.served_models()
        except NmpError:
            if not overdue:
                raise
            served = False
        if served:
            await self._finish(record, Outcome(customized_model=record.output_model))
        elif overdue:
            await self._finish(
                record,
                Outcome.failed(
                    CustomizationErrorKind.MODEL_SYNC_FAILED,
                    f"{record.output_model} was not served by the NIM proxy "
                    f"{waited_s:.0f}s after training completed",
                ),
            )

    # --- cancellation and the end ------------------------------------------------------------

    async def _cancel(self, record: CustomizationRecord, reason: str) -> None:
        job_id = record.job_id
        if record.phase is Phase.REQUESTED and record.submit_attempted_at is not None:
            # A POST may have created a job this record never learnt about.
            found = await self._training.find_job(record.job_name)
            job_id = found.id if found is not None else None
        # A synced job has finished training: there is nothing left to stop.
        if job_id is not None and record.phase in (Phase.REQUESTED, Phase.TRAINING):
            await self._cancel_job(job_id)
        await self._finish(
            record.model_copy(update={"job_id": job_id}),
            Outcome.failed(CustomizationErrorKind.CANCELLED, f"run cancelled: {reason}"),
        )

    async def _cancel_job(self, job_id: str) -> None:
        # A job NMP cannot confirm stopped raises here, and the next pass tries again.
        await self._training.cancel(job_id)
        _log.info("customization.job_cancelled", job_id=job_id)

    async def _finish(self, record: CustomizationRecord, outcome: Outcome) -> None:
        finished = await self._save(
            record.model_copy(
                update={"phase": Phase.FINISHED, "outcome": outcome, "finished_at": self._clock()}
            ),
            expected=record.phase,
        )
        await self._publish_done(finished)

    async def _publish_done(self, record: CustomizationRecord) -> None:
        outcome, finished_at = record.outcome, record.finished_at
        assert outcome is not None and finished_at is not None
        progress = record.progress
        runtime_s = (
            (finished_at - record.submitted_at).total_seconds() if record.submitted_at else 0.0
        )
        nim_up = record.nim_up
        await self._emit(
            CustomizationDone(
                candidate_model=record.candidate_model,
                job_id=record.job_id,
                customized_model=outcome.customized_model,
                error=outcome.error,
                epochs_completed=progress.epochs if progress else 0,
                steps_completed=progress.steps if progress else 0,
                runtime_seconds=max(runtime_s, 0.0),
                deployment=nim_up.deployment,
                context=nim_up.context,
            ),
            cause=record.cause,
        )
        await self._save(
            record.model_copy(update={"done_published": True}), expected=Phase.FINISHED
        )
        _log.info(
            "customization.done",
            customized_model=outcome.customized_model,
            error_kind=outcome.error.kind.value if outcome.error else None,
            error=outcome.error.message if outcome.error else None,
        )

    async def _save(self, record: CustomizationRecord, *, expected: Phase) -> CustomizationRecord:
        if not await self._store.save(record, expected=expected):
            raise LeaseLost
        return record


def _request(record: CustomizationRecord) -> JobRequest:
    nim_up = record.nim_up
    context = nim_up.context
    return JobRequest(
        name_scope=name_scope(record.run_uuid, context.config.workload_id),
        candidate=nim_up.candidate,
        training=context.config.training,
        train_dataset=context.datasets.train.name,
    )
