"""The periodic checks that need no event: stale runs and orphaned NMP resources.

Both only record reclaim tasks; the reclaimer does the work and the reporting.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from uuid import uuid4

import structlog

from flywheel_contracts.events import ReclaimTrigger, ResourceKind
from flywheel_contracts.runtime.clock import utc_now
from flywheel_contracts.runtime.delivery import describe_exception
from flywheel_janitor.config import SweepSettings
from flywheel_janitor.ledger import ReclaimTask, Target, Terminal
from flywheel_janitor.ports import Clock, Inventory, Ledger

STALE_EVENT_TYPE = "janitor.stale"

_log = structlog.get_logger("flywheel.janitor.sweeps")


class Sweeper:
    def __init__(
        self,
        ledger: Ledger,
        inventory: Inventory,
        settings: SweepSettings,
        *,
        wake: Callable[[], None],
        clock: Clock = utc_now,
    ) -> None:
        self._ledger = ledger
        self._inventory = inventory
        self._settings = settings
        self._wake = wake
        self._clock = clock

    async def stale_forever(self) -> None:
        await _every(self._settings.stale_interval_s, self.sweep_stale, "stale")

    async def orphans_forever(self) -> None:
        await _every(self._settings.orphan_interval_s, self.sweep_orphans, "orphans")

    async def sweep_stale(self) -> int:
        """Record a reclaim for every run holding resources with no activity for
        `stale_after_s`; returns how many. A run that ended but kept a resource (its reclaim
        failed) is caught the same way, so failed reclaims are retried once per period."""
        now = self._clock()
        quiet_limit = self._settings.stale_after_s
        holders = sorted({r.run_id for r in await self._ledger.live_resources()})
        recorded = 0
        for run in await self._ledger.quiet_runs(holders, now - timedelta(seconds=quiet_limit)):
            if await self._ledger.has_pending_task(run.run_id):
                continue
            idle = (now - run.active_at).total_seconds()
            reason = (
                f"stale: no event for {idle:.0f}s (limit {quiet_limit:g}s), "
                f"last {run.last_event_type}"
            )
            cause_id = f"stale:{run.run_id}:{run.active_at.isoformat()}"
            await self._ledger.end_run(
                run.run_id,
                Terminal(
                    trigger=ReclaimTrigger.STALE_RUN,
                    reason=reason,
                    event_type=STALE_EVENT_TYPE,
                    cause_id=cause_id,
                    at=now,
                ),
            )
            task = ReclaimTask(
                task_id=cause_id,
                run_id=run.run_id,
                trigger=ReclaimTrigger.STALE_RUN,
                reason=reason,
                created_at=now,
            )
            if await self._ledger.add_task(task):
                recorded += 1
                _log.warning("janitor.stale_run", run_id=str(run.run_id), idle_s=round(idle))
        if recorded:
            self._wake()
        return recorded

    async def sweep_orphans(self) -> int:
        """Compare what NMP runs with what the ledger holds live; record a reclaim of what has
        been unknown for `orphan_grace_s`. Returns how many resources it covers."""
        now = self._clock()
        running = await self._inventory.live_resources()
        known = {resource.target.key for resource in await self._ledger.live_resources()}
        unknown = [t for t in running if t.key not in known and not self._protected(t)]
        first_seen = await self._ledger.sight_orphans(unknown, now)
        grace = timedelta(seconds=self._settings.orphan_grace_s)
        due = tuple(t for t in unknown if now - first_seen.get(t.key, now) >= grace)
        if not due:
            return 0
        task = ReclaimTask(
            task_id=f"orphans:{uuid4()}",
            run_id=None,
            trigger=ReclaimTrigger.STALE_RUN,
            reason=f"orphaned: unknown to Flywheel for over {self._settings.orphan_grace_s:g}s",
            targets=due,
            created_at=now,
        )
        await self._ledger.add_task(task)
        await self._ledger.forget_orphans([t.key for t in due])
        _log.warning("janitor.orphans", resources=[t.ref.id for t in due])
        self._wake()
        return len(due)

    def _protected(self, target: Target) -> bool:
        return (
            target.kind is ResourceKind.DEPLOYMENT
            and target.resource_id in self._settings.protected_deployments
        )


async def _every(interval_s: float, sweep: Callable[[], Awaitable[int]], name: str) -> None:
    while True:
        try:
            await sweep()
        except Exception as exc:  # NMP or Mongo away: the next period tries again
            _log.warning("janitor.sweep_failed", sweep=name, error=describe_exception(exc))
        await asyncio.sleep(interval_s)
