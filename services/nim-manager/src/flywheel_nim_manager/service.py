"""nim-manager's logic: handlers record what happened, the loop (on the lease holder) acts on it.

Handlers never wait on NMP: they store the input in Mongo and wake the loop. The loop holds or
takes the scheduler lease and, while it leads, runs the reconciler's passes.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import (
    CustomizationDone,
    DatasetFailed,
    DatasetReady,
    EvalDone,
    InFlightWork,
    RunCancelled,
)
from flywheel_contracts.run_config import CandidateConfig
from flywheel_nim_manager import conductor, metrics
from flywheel_nim_manager.ports import Clock, Lease, Repository
from flywheel_nim_manager.reconciler import Reconciler
from flywheel_nim_manager.records import WorkItem, WorkOutcome

_log = structlog.get_logger("flywheel.nim_manager")


@dataclass(frozen=True)
class SchedulerStatus:
    instance: str
    leader: bool
    holder: str | None
    budget: int
    gpus_in_use: int | None
    """Known on the leader only."""


class NimManagerService:
    def __init__(
        self,
        repository: Repository,
        reconciler: Reconciler,
        lease: Lease,
        clock: Clock,
        *,
        budget: int,
        tick_interval_s: float,
        judge: CandidateConfig | None = None,
    ) -> None:
        self._repo = repository
        self._judge = judge
        self._reconciler = reconciler
        self._lease = lease
        self._clock = clock
        self._budget = budget
        self._interval = tick_interval_s
        self._wake = asyncio.Event()
        self._leading = False

    # Inputs (called by the handlers).

    async def on_dataset_ready(self, event: Envelope[DatasetReady]) -> None:
        run_id = event.scoped_run_id
        records = conductor.plan(run_id, event.payload, self._clock(), judge=self._judge)
        if await self._repo.add_ready(event, records):
            _log.info("run.planned", run_id=str(run_id), candidates=[r.model for r in records])
        else:
            _log.info("run.already_planned", run_id=str(run_id))
        self._wake.set()

    async def on_dataset_failed(self, event: Envelope[DatasetFailed]) -> None:
        await self._repo.add_dataset_failed(event)
        _log.info(
            "run.dataset_failed", run_id=str(event.scoped_run_id), reason=event.payload.reason
        )
        self._wake.set()

    async def on_run_cancelled(self, event: Envelope[RunCancelled]) -> None:
        await self._repo.add_cancelled(event)
        _log.info("run.cancel_requested", run_id=str(event.scoped_run_id))
        self._wake.set()

    async def on_eval_done(self, event: Envelope[EvalDone]) -> None:
        done = event.payload
        item = WorkItem.evaluation(done.eval_type)
        await self._record(event, done.candidate_model, item, WorkOutcome.of_eval(done))

    async def on_customization_done(self, event: Envelope[CustomizationDone]) -> None:
        done = event.payload
        outcome = WorkOutcome.of_customization(done)
        await self._record(event, done.candidate_model, WorkItem.CUSTOMIZATION, outcome)

    async def _record(
        self, event: Envelope[Any], model: str, item: WorkItem, outcome: WorkOutcome
    ) -> None:
        run_id = event.scoped_run_id
        if await self._repo.record_outcome(run_id, model, item, outcome):
            _log.info("work.done", run_id=str(run_id), model=model, item=item.value, ok=outcome.ok)
            self._wake.set()
        else:
            # A run this service never planned (or another deployment's history): nothing waits.
            _log.warning("work.unknown_candidate", run_id=str(run_id), model=model, item=item.value)

    # The loop.

    async def run_forever(self) -> None:
        """Lead when the lease allows, pass after pass, until cancelled; then hand over."""
        try:
            while True:
                await self.run_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                self._wake.clear()
        finally:
            # Hand the lease over at once on shutdown instead of making the standby wait it out.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._lease.release())
            metrics.LEADER.set(0)

    async def run_once(self) -> None:
        """One pass if this instance leads; failures are logged and retried next time."""
        try:
            leading = await self._lease.hold() is not None
            if leading != self._leading:
                _log.info("scheduler.leadership", leading=leading, instance=self._lease.holder_id)
            self._leading = leading
            metrics.LEADER.set(int(leading))
            if leading:
                await self._reconciler.tick()
        except Exception:
            _log.exception("scheduler.pass_failed")

    # Reports.

    async def status(self) -> SchedulerStatus:
        return SchedulerStatus(
            instance=self._lease.holder_id,
            leader=self._leading,
            holder=await self._lease.holder(),
            budget=self._budget,
            gpus_in_use=self._reconciler.gpus_in_use() if self._leading else None,
        )

    async def in_flight(self) -> Sequence[InFlightWork]:
        """The deployments this instance was driving when it stopped (none on a standby)."""
        if not self._leading:
            return ()
        runs = await self._repo.open_runs()
        records = await self._repo.candidates(run.run_id for run in runs)
        return [
            InFlightWork(run_id=r.run_id, kind="deployment", resource_id=r.deployment_name)
            for r in records
            if r.phase.holds_gpus
        ]
