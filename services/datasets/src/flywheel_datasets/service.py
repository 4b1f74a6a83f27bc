"""The datasets service: records a job per requested run, builds it in the background, publishes
`dataset.ready` or `dataset.failed`, and honours `run.cancelled`.

Handlers only touch Mongo. A reconciler loop claims jobs under a lease (renewed while the build
runs), so a build whose instance died is taken over once the lease runs out, and a restarted
instance resumes from Mongo. A job claimed more than `max_build_attempts` times without an
outcome (its builds crashed the instance or lost the lease each time) fails the run instead of
being built forever; a build handed back at shutdown does not count. A `run.requested` whose
overrides fail validation (a value outside its bound) never decodes: it is dead-lettered by the
kit, and `on_invalid_run_request` fails its run with the field and the bound first. The outcome is stored in the job before it is published (an
outbox): a crash between the two publishes it later, with the same event id, derived from the
request. Dataset names derive from the run id, so a repeated build reuses its datasets.
"""

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import structlog

from flywheel_contracts.envelope import Envelope, decode, restored, stored
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.events import (
    DatasetContext,
    DatasetFailed,
    DatasetFailureReason,
    DatasetReady,
    DatasetRefs,
    InFlightWork,
    RunCancelled,
    RunRequested,
)
from flywheel_contracts.ids import deterministic_name
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.primitives import MESSAGE_MAX
from flywheel_contracts.run_config import RunConfig
from flywheel_contracts.runtime.emitting import NewEvent, Publish
from flywheel_contracts.runtime.nmp.names import DatasetKind, dataset_name
from flywheel_datasets.builder import Built
from flywheel_datasets.errors import BuildFailed, InvalidRunConfig
from flywheel_datasets.ports import DatasetStore
from flywheel_datasets.repository import Job, JobStatus, JobStore
from flywheel_datasets.run_defaults import RunDefaults

_KINDS: tuple[DatasetKind, ...] = ("eval", "icl", "train")
_STAMP_LEN = 12

_log = structlog.get_logger("flywheel.datasets")


class Builder(Protocol):
    async def build(self, config: RunConfig, until: datetime, directory: Path) -> Built: ...


@dataclass(frozen=True)
class ServiceOptions:
    owner: str
    lease: timedelta
    reconcile_interval_s: float
    max_concurrent_builds: int
    max_build_attempts: int = 3
    """Claims of one job (builds started) before its run fails with `dataset.failed`."""


def dataset_names(workload_id: str, run_id: UUID) -> dict[DatasetKind, str]:
    """The run's dataset names: `flywheel-{kind}-{workload}-{run id head}`, NMP-safe."""
    stamp = run_id.hex[:_STAMP_LEN]
    return {kind: deterministic_name(dataset_name(kind, workload_id, stamp)) for kind in _KINDS}


class DatasetService:
    def __init__(
        self,
        repository: JobStore,
        builder: Builder,
        store: DatasetStore,
        defaults: RunDefaults,
        *,
        new_event: NewEvent,
        publish: Publish,
        options: ServiceOptions,
    ) -> None:
        self._jobs = repository
        self._builder = builder
        self._store = store
        self._defaults = defaults
        self._new_event = new_event
        self._publish = publish
        self._options = options
        self._builds: dict[UUID, asyncio.Task[None]] = {}
        self._cancelling: set[UUID] = set()
        self._wake = asyncio.Event()

    # Handlers.

    async def on_run_requested(self, event: Envelope[RunRequested]) -> None:
        run_id = event.scoped_run_id
        try:
            config = self._defaults.resolve(event.payload, run_id)
        except BuildFailed as exc:
            await self._record_invalid(event, exc)
            return
        await self._record_job(event, config=config.model_dump(mode="json"))

    async def on_invalid_run_request(self, raw: bytes, error: InvalidEvent) -> None:
        """A `run.requested` that failed validation, told by the kit before it dead-letters it.

        When only its overrides are at fault (a value outside its bound), the run fails with
        `dataset.failed` (`invalid_config`) naming each field and its bound, as if the request
        had decoded and its configuration been refused; anything else stays a dead letter only.
        """
        request, overrides = _without_overrides(raw)
        if request is None:
            _log.warning("dataset.request_undecodable", error=str(error)[:MESSAGE_MAX])
            return
        try:
            self._defaults.check_overrides(overrides)
        except InvalidRunConfig as exc:
            await self._record_invalid(request, exc)
            return
        await self._record_invalid(request, InvalidRunConfig(f"the request is invalid: {error}"))

    async def _record_invalid(self, event: Envelope[RunRequested], exc: BuildFailed) -> None:
        """Record the run as failed with `exc`'s reason, to be announced by the reconciler."""
        _log.warning("dataset.invalid_config", run_id=str(event.scoped_run_id), error=str(exc))
        await self._record_job(
            event, config=None, outcome=self._failure(event, exc.reason, str(exc))
        )

    async def _record_job(
        self,
        event: Envelope[RunRequested],
        *,
        config: dict[str, Any] | None,
        outcome: str | None = None,
    ) -> None:
        """The run's job (to build, or already failed with `outcome`); a request after its run
        was cancelled settles as cancelled, a repeated one changes nothing."""
        run_id = event.scoped_run_id
        log = _log.bind(run_id=str(run_id))
        request = stored(event)
        created = await self._jobs.create(run_id, request=request, config=config, outcome=outcome)
        if created is not None:
            log.info("dataset.job_recorded", status=created.status.value)
            self._wake.set()
            return
        cancelled = self._failure(event, DatasetFailureReason.CANCELLED, "the run was cancelled")
        if await self._jobs.settle_tombstone(run_id, request=request, outcome=cancelled):
            log.info("dataset.request_after_cancel")
            self._wake.set()
        else:
            log.info(
                "dataset.request_repeated", note="the run already has its job; nothing rebuilt"
            )

    async def on_run_cancelled(self, event: Envelope[RunCancelled]) -> None:
        run_id = event.scoped_run_id
        log = _log.bind(run_id=str(run_id))
        job = await self._jobs.get(run_id)
        if job is None:
            await self._jobs.tombstone(run_id)
            log.info("dataset.cancelled_before_request")
            return
        if job.request is None or job.status not in (JobStatus.PENDING, JobStatus.BUILDING):
            log.info("dataset.cancel_ignored", status=job.status.value)
            return
        outcome = self._failure(
            restored(job.request),
            DatasetFailureReason.CANCELLED,
            f"the run was cancelled: {event.payload.reason}",
        )
        if await self._jobs.cancel(run_id, outcome):
            log.info("dataset.cancelled", reason=event.payload.reason)
            self._stop_build(run_id)
            self._wake.set()

    # Background work.

    async def reconcile_forever(self) -> None:
        await self._jobs.ensure_indexes()
        try:
            while True:
                self._wake.clear()
                await self.reconcile_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._options.reconcile_interval_s)
        finally:
            await self._abandon_builds()

    async def reconcile_once(self) -> None:
        """Publish stored outcomes, then start builds while there is room."""
        await self._publish_outcomes()
        while len(self._builds) < self._options.max_concurrent_builds:
            job = await self._jobs.claim(self._options.owner, self._options.lease)
            if job is None:
                return
            if job.attempts > self._options.max_build_attempts:
                await self._give_up(job)
                continue
            self._builds[job.run_id] = asyncio.create_task(
                self._build(job), name=f"dataset-build-{job.run_id}"
            )

    async def in_flight(self) -> Sequence[InFlightWork]:
        return [InFlightWork(run_id=run_id, kind="dataset_build") for run_id in self._builds]

    async def _build(self, job: Job) -> None:
        run_id = job.run_id
        log = _log.bind(run_id=str(run_id), attempt=job.attempts)
        assert job.request is not None and job.config is not None
        request: Envelope[RunRequested] = restored(job.request)
        config = RunConfig.model_validate(job.config)
        keeper = asyncio.create_task(self._keep_lease(run_id))
        status, outcome = JobStatus.FAILED, ""
        try:
            log.info("dataset.build_started", workload_id=config.workload_id)
            status, payload = await self._outcome(request, config)
            outcome = stored(self._new_event(payload, cause=request))
        except asyncio.CancelledError:
            if run_id not in self._cancelling:
                raise  # shutting down: the job is handed back in _abandon_builds
        finally:
            keeper.cancel()
            self._builds.pop(run_id, None)
        if run_id in self._cancelling or not await self._jobs.finish(
            run_id, self._options.owner, status, outcome
        ):
            self._cancelling.discard(run_id)
            current = await self._jobs.get(run_id)
            cancelled = current is not None and current.status is JobStatus.CANCELLED
            log.info("dataset.build_discarded", reason="cancelled" if cancelled else "taken over")
            if cancelled:  # a job taken over by another instance keeps its datasets
                await self._delete_datasets(config.workload_id, run_id)
            return
        log.info("dataset.build_finished", status=status.value)
        self._wake.set()

    async def _give_up(self, job: Job) -> None:
        """Fail a run whose builds never reached an outcome `max_build_attempts` times."""
        run_id, tried = job.run_id, job.attempts - 1
        message = (
            f"the dataset build was started {tried} times (max_build_attempts) and never "
            "finished: each attempt crashed its instance or lost its lease"
        )
        _log.error("dataset.build_given_up", run_id=str(run_id), attempts=tried)
        try:
            request = restored(job.request or "")
        except InvalidEvent as exc:  # a job without a usable request cannot be announced
            _log.error("dataset.build_given_up_unannounced", run_id=str(run_id), error=str(exc))
            if await self._jobs.finish(run_id, self._options.owner, JobStatus.FAILED, ""):
                await self._jobs.mark_published(run_id)  # nothing to announce
            return
        outcome = self._failure(request, DatasetFailureReason.INTERNAL_ERROR, message)
        if await self._jobs.finish(run_id, self._options.owner, JobStatus.FAILED, outcome):
            self._wake.set()

    async def _outcome(
        self, request: Envelope[RunRequested], config: RunConfig
    ) -> tuple[JobStatus, EventPayload]:
        run_id = request.scoped_run_id
        try:
            # The files live on disk only until they are uploaded (or the build fails).
            with tempfile.TemporaryDirectory(prefix="flywheel-datasets-") as directory:
                built = await self._builder.build(config, request.occurred_at, Path(directory))
                uploading = time.perf_counter()
                refs = await self._upload(config, run_id, built)
                _log.info(
                    "dataset.uploaded",
                    run_id=str(run_id),
                    seconds=round(time.perf_counter() - uploading, 3),
                    megabytes=round(built.size / 1e6, 1),
                )
        except BuildFailed as exc:
            _log.warning(
                "dataset.build_failed", run_id=str(run_id), reason=exc.reason.value, error=str(exc)
            )
            return JobStatus.FAILED, DatasetFailed(
                reason=exc.reason, message=_message(str(exc)), stats=exc.stats
            )
        except Exception as exc:
            # A bug, not bad input: fail the run loudly instead of retrying it forever.
            _log.exception("dataset.build_crashed", run_id=str(run_id))
            return JobStatus.FAILED, DatasetFailed(
                reason=DatasetFailureReason.INTERNAL_ERROR,
                message=_message(f"{type(exc).__name__}: {exc}"),
            )
        context = DatasetContext(datasets=refs, workload_type=built.workload_type, config=config)
        return JobStatus.DONE, DatasetReady(
            context=context, counts=built.counts, stats=built.stats, baseline=built.baseline
        )

    async def _upload(self, config: RunConfig, run_id: UUID, built: Built) -> DatasetRefs:
        names = dataset_names(config.workload_id, run_id)
        files: dict[DatasetKind, dict[str, Path]] = {
            "eval": built.eval_files,
            "icl": built.icl_files,
            "train": built.train_files,
        }
        refs = {kind: await self._store.publish(names[kind], files[kind]) for kind in _KINDS}
        return DatasetRefs(eval=refs["eval"], icl=refs["icl"], train=refs["train"])

    async def _keep_lease(self, run_id: UUID) -> None:
        """Renew the lease; a job that is no longer ours (cancelled elsewhere) stops the build."""
        while True:
            await asyncio.sleep(self._options.lease.total_seconds() / 3)
            try:
                ours = await self._jobs.renew(run_id, self._options.owner, self._options.lease)
            except Exception as exc:  # Mongo briefly away: try again at the next beat
                _log.warning("dataset.lease_renewal_failed", run_id=str(run_id), error=str(exc))
                continue
            if not ours:  # cancelled, or taken over after this instance stalled
                _log.info("dataset.lease_lost", run_id=str(run_id))
                self._stop_build(run_id)
                return

    def _stop_build(self, run_id: UUID) -> None:
        task = self._builds.get(run_id)
        if task is not None:
            self._cancelling.add(run_id)
            task.cancel()

    async def _abandon_builds(self) -> None:
        """On shutdown: stop the builds and hand their jobs back for another instance."""
        builds = dict(self._builds)
        for task in builds.values():
            task.cancel()
        await asyncio.gather(*builds.values(), return_exceptions=True)
        for run_id in builds:
            with contextlib.suppress(Exception):
                await self._jobs.release(run_id, self._options.owner)

    async def _delete_datasets(self, workload_id: str, run_id: UUID) -> None:
        for name in dataset_names(workload_id, run_id).values():
            try:
                await self._store.delete(name)
            except Exception as exc:  # the janitor's sweep is the backstop
                _log.warning(
                    "dataset.cleanup_failed", run_id=str(run_id), name=name, error=str(exc)
                )

    async def _publish_outcomes(self) -> None:
        for job in await self._jobs.unpublished():
            if job.outcome is None:
                continue
            try:
                await self._publish(restored(job.outcome))
            except Exception as exc:  # Kafka away: the outcome stays stored, retried next round
                _log.warning("dataset.publish_failed", run_id=str(job.run_id), error=str(exc))
                return
            await self._jobs.mark_published(job.run_id)
            _log.info("dataset.outcome_published", run_id=str(job.run_id), status=job.status.value)

    def _failure(self, request: Envelope[Any], reason: DatasetFailureReason, message: str) -> str:
        payload = DatasetFailed(reason=reason, message=_message(message))
        return stored(self._new_event(payload, cause=request))


def _without_overrides(raw: bytes) -> tuple[Envelope[RunRequested] | None, object]:
    """The request `raw` with its overrides left out (None when that is not valid either), and
    the overrides it carried."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None, None
    payload = data.get("payload") if isinstance(data, dict) else None
    if not isinstance(payload, dict):
        return None, None
    overrides = payload.get("overrides", {})
    stripped = {**data, "payload": {**payload, "overrides": {}}}
    try:
        event = decode(json.dumps(stripped).encode())
    except InvalidEvent:
        return None, overrides
    if not isinstance(event.payload, RunRequested) or event.run_id is None:
        return None, overrides
    return event, overrides


def _message(text: str) -> str:
    return text[:MESSAGE_MAX] or "no details"
