"""The reconciler: carries out reclaim tasks through NMP and publishes what came of them.

A task goes: reclaim every target (concurrently, one failure never stops the others) -> record
each outcome in the ledger -> build the report and save it with the task -> publish -> done.
The saved report is an outbox: after a crash the same envelope is published again, so a report
keeps its id even for tasks without a triggering event (stale runs, orphans).
"""

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

import structlog

from flywheel_contracts.envelope import restored, stored
from flywheel_contracts.events import InFlightWork, ReclaimFailure, ResourcesReclaimed
from flywheel_contracts.runtime.clock import utc_now
from flywheel_contracts.runtime.delivery import describe_exception
from flywheel_contracts.runtime.emitting import NewEvent, Publish
from flywheel_janitor.config import ReclaimSettings
from flywheel_janitor.ledger import (
    NO_RUN,
    HistoryEntry,
    Outcome,
    ReclaimTask,
    Target,
    message,
)
from flywheel_janitor.ports import Clock, Ledger, ReclaimResult, ResourceReclaimer

_BATCH = 100

_log = structlog.get_logger("flywheel.janitor.reclaimer")


class Reclaimer:
    def __init__(
        self,
        ledger: Ledger,
        resources: ResourceReclaimer,
        new_event: NewEvent,
        publish: Publish,
        settings: ReclaimSettings,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._ledger = ledger
        self._resources = resources
        self._new_event = new_event
        self._publish = publish
        self._settings = settings
        self._clock = clock
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """A task was recorded: run it now rather than at the next poll."""
        self._woken.set()

    async def run_forever(self) -> None:
        while True:
            self._woken.clear()
            try:
                await self.run_pending()
            except Exception as exc:  # Mongo or Kafka away: the tasks stay pending
                _log.warning("reclaimer.pass_failed", error=describe_exception(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._settings.poll_interval_s)

    async def run_pending(self) -> int:
        """Run every pending task: the runs concurrently, each run's tasks in order (so two
        tasks never race for one resource). Returns how many tasks were finished."""
        tasks = await self._ledger.pending_tasks(_BATCH)
        by_run: dict[UUID | None, list[ReclaimTask]] = defaultdict(list)
        for task in tasks:
            by_run[task.run_id].append(task)
        finished = await asyncio.gather(*(self._run_all(queue) for queue in by_run.values()))
        return sum(finished)

    async def in_flight(self) -> list[InFlightWork]:
        """Pending tasks, for this instance's `service.stopping`."""
        return [
            InFlightWork(run_id=task.run_id or NO_RUN, kind="reclaim_task", resource_id=None)
            for task in await self._ledger.pending_tasks(_BATCH)
        ]

    async def _run_all(self, queue: Sequence[ReclaimTask]) -> int:
        for done, task in enumerate(queue):
            try:
                await self._run(task)
            except Exception as exc:
                # The task stays pending and is retried at the next pass; later tasks of the
                # same run wait for it.
                _log.warning(
                    "reclaimer.task_failed",
                    task_id=task.task_id,
                    run_id=str(task.run_id),
                    error=describe_exception(exc),
                )
                return done
        return len(queue)

    async def _run(self, task: ReclaimTask) -> None:
        with structlog.contextvars.bound_contextvars(
            run_id=str(task.run_id or ""), task_id=task.task_id, trigger=task.trigger.value
        ):
            report = task.report
            if report is None:
                report = await self._reclaim(task)
                if report is None:
                    await self._ledger.finish_task(task.task_id)
                    return
                await self._ledger.save_report(task.task_id, report)
            envelope = restored(report)
            await self._publish(envelope)
            payload: ResourcesReclaimed = envelope.payload
            if task.run_id is not None:
                await self._ledger.add_history(
                    HistoryEntry(
                        run_id=task.run_id,
                        entry_id=str(envelope.event_id),
                        at=envelope.occurred_at,
                        kind=envelope.event_type,
                        summary=_summary(payload),
                    )
                )
            await self._ledger.finish_task(task.task_id)
            _log.info(
                "reclaimer.reported",
                reclaimed=len(payload.reclaimed),
                already_gone=len(payload.already_gone),
                failed=len(payload.failed),
            )

    async def _reclaim(self, task: ReclaimTask) -> str | None:
        """Reclaim the task's targets; the report envelope, encoded, or None if none is due."""
        targets, settled = await self._scope(task)
        holders = await self._other_holders(task.run_id)
        results = await asyncio.gather(
            *(self._reclaim_one(t, settled.get(t.key), holders.get(t.key)) for t in targets)
        )
        now = self._clock()
        if task.run_id is not None:
            for target, result in zip(targets, results, strict=True):
                await self._ledger.record_outcome(
                    task.run_id, target, result, at=now, task_id=task.task_id
                )
            await self._ledger.mark_active(task.run_id, now)
        payload = _report(task, targets, results)
        if not (payload.reclaimed or payload.already_gone or payload.failed or task.always_report):
            return None
        cause = restored(task.cause) if task.cause is not None else None
        envelope = self._new_event(
            payload, run_id=task.run_id or NO_RUN, cause=cause, discriminator=task.discriminator
        )
        return stored(envelope)

    async def _scope(self, task: ReclaimTask) -> tuple[list[Target], dict[str, ReclaimResult]]:
        """The task's targets, and what an earlier attempt of it already settled (it died
        before its report was saved): those keep their outcome instead of a second NMP call,
        which would only find them gone."""
        if task.targets is not None:
            return list(task.targets), {}
        if task.run_id is None:
            return [], {}
        records = await self._ledger.resources_of(task.run_id)
        settled = {
            r.target.key: ReclaimResult(r.outcome, r.error)
            for r in records
            if r.outcome_task == task.task_id and r.outcome is not None
        }
        return [r.target for r in records if r.live or r.target.key in settled], settled

    async def _other_holders(self, run_id: UUID | None) -> dict[str, UUID]:
        """Resources that runs still going (not `run_id`) hold live, by `Target.key`: deployment
        names follow the model, so two runs of one candidate can share a deployment."""
        holders: dict[str, UUID] = {}
        for resource in await self._ledger.live_resources():
            if resource.run_id == run_id or resource.target.key in holders:
                continue
            run = await self._ledger.get_run(resource.run_id)
            if run is not None and run.terminal is None:
                holders[resource.target.key] = resource.run_id
        return holders

    async def _reclaim_one(
        self, target: Target, settled: ReclaimResult | None, held_by: UUID | None
    ) -> ReclaimResult:
        if settled is not None:
            return settled
        if held_by is not None:
            _log.info("reclaimer.shared", resource=target.ref.id, held_by=str(held_by))
            return ReclaimResult(Outcome.SHARED, f"still held by run {held_by}")
        async with self._slots:
            try:
                result = await self._resources.reclaim(target)
            except Exception as exc:  # one resource's surprise must not cost the others
                result = ReclaimResult(Outcome.FAILED, describe_exception(exc))
        log = _log.warning if result.outcome is Outcome.FAILED else _log.info
        log(
            "reclaimer.resource", resource=target.ref.id, outcome=result.outcome, error=result.error
        )
        return result


def _report(
    task: ReclaimTask, targets: Sequence[Target], results: Sequence[ReclaimResult]
) -> ResourcesReclaimed:
    def refs(outcome: Outcome) -> tuple[Target, ...]:
        return tuple(t for t, r in zip(targets, results, strict=True) if r.outcome is outcome)

    failed = tuple(
        ReclaimFailure(resource=t.ref, error=message(r.error or "unknown error"))
        for t, r in zip(targets, results, strict=True)
        if r.outcome is Outcome.FAILED
    )
    return ResourcesReclaimed(
        trigger=task.trigger,
        reason=message(task.reason),
        reclaimed=tuple(t.ref for t in refs(Outcome.RECLAIMED)),
        already_gone=tuple(t.ref for t in refs(Outcome.ALREADY_GONE)),
        failed=failed,
    )


def _summary(report: ResourcesReclaimed) -> str:
    return (
        f"{report.trigger.value}: reclaimed {len(report.reclaimed)}, "
        f"already gone {len(report.already_gone)}, failed {len(report.failed)}"
    )
