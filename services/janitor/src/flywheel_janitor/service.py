"""Building the ledger from the events, and deciding what is to be reclaimed.

Handlers only write the ledger and record reclaim tasks; the reclaimer loop talks to NMP. Events
may arrive in any order across topics, so nothing here assumes one: resources are flags (see
`ledger`), a resource seen for a run that has already ended is reclaimed at once, and a run the
janitor first hears of after a `system.shutdown` is still ended by it when its earliest event
predates the shutdown.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from flywheel_contracts.envelope import Envelope, stored
from flywheel_contracts.events import (
    CustomizationDone,
    CustomizationProgress,
    CustomizationStarted,
    DatasetFailed,
    DatasetReady,
    EvalDone,
    EvalProgress,
    EvalStarted,
    NimDown,
    NimFailed,
    NimUp,
    ReclaimTrigger,
    ResourceKind,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunRequested,
    ServiceStopping,
    SystemShutdown,
)
from flywheel_contracts.runtime.clock import utc_now
from flywheel_janitor.ledger import (
    NO_RUN,
    HistoryEntry,
    InFlightEntry,
    ReclaimTask,
    RunRecord,
    ShutdownMark,
    StoppedInstance,
    Target,
    Terminal,
)
from flywheel_janitor.ports import Clock, Ledger, RunFacts

_log = structlog.get_logger("flywheel.janitor")


class JanitorService:
    """One method per consumed event type; each records facts and, when due, a reclaim task."""

    def __init__(self, ledger: Ledger, *, wake: Callable[[], None], clock: Clock = utc_now) -> None:
        self._ledger = ledger
        self._wake = wake
        self._clock = clock

    # Runs.

    async def on_run_requested(self, event: Envelope[RunRequested]) -> None:
        p = event.payload
        await self._note(
            event,
            f"requested for workload {p.workload_id}, client {p.client_id}",
            workload_id=p.workload_id,
            client_id=p.client_id,
        )

    async def on_dataset_ready(self, event: Envelope[DatasetReady]) -> None:
        config = event.payload.context.config
        counts = event.payload.counts
        await self._note(
            event,
            f"datasets ready: eval {counts.eval}, train {counts.train}, val {counts.val}",
            workload_id=config.workload_id,
            client_id=config.client_id,
        )

    async def on_dataset_failed(self, event: Envelope[DatasetFailed]) -> None:
        p = event.payload
        await self._note(event, f"no dataset ({p.reason.value}): {p.message}")

    async def on_run_completed(self, event: Envelope[RunCompleted]) -> None:
        # The owners reclaim their resources before the run completes: report only leftovers.
        await self._end(event, ReclaimTrigger.RUN_FINISHED, "run completed", always_report=False)

    async def on_run_failed(self, event: Envelope[RunFailed]) -> None:
        p = event.payload
        reason = f"run failed ({p.reason.value}): {p.message}"
        await self._end(event, ReclaimTrigger.RUN_FINISHED, reason, always_report=True)

    async def on_run_cancelled(self, event: Envelope[RunCancelled]) -> None:
        p = event.payload
        reason = p.reason if p.requested_by is None else f"{p.reason} (by {p.requested_by})"
        # A client asked: it gets an answer even when the run had ended already.
        await self._end(
            event, ReclaimTrigger.RUN_CANCELLED, reason, always_report=True, even_if_ended=True
        )

    # Resources.

    async def on_nim_up(self, event: Envelope[NimUp]) -> None:
        ref = event.payload.deployment
        if event.payload.candidate.external:
            # Nothing of it lives in NMP: there is nothing to reclaim, and asking NMP to delete
            # a deployment it never had would be a lie in its audit log.
            await self._note(event, f"{ref.model_id} reached at {ref.base_url} (external)")
            return
        target = Target(kind=ResourceKind.DEPLOYMENT, resource_id=ref.name, namespace=ref.namespace)
        await self._up(event, target, ref.model_id, f"deployment {ref.namespace}/{ref.name} up")

    async def on_nim_down(self, event: Envelope[NimDown]) -> None:
        p = event.payload
        target = Target(kind=ResourceKind.DEPLOYMENT, resource_id=p.deployment_name)
        await self._down(event, target, f"deployment {p.deployment_name} down ({p.reason.value})")

    async def on_nim_failed(self, event: Envelope[NimFailed]) -> None:
        p = event.payload
        await self._note(event, f"{p.candidate_model} not deployed ({p.reason.value}): {p.message}")

    async def on_customization_started(self, event: Envelope[CustomizationStarted]) -> None:
        p = event.payload
        target = Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id=p.job_id)
        await self._up(event, target, p.output_model, f"training job {p.job_id} started")

    async def on_customization_progress(self, event: Envelope[CustomizationProgress]) -> None:
        p = event.payload
        target = Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id=p.job_id)
        await self._up(event, target, None, None)

    async def on_customization_done(self, event: Envelope[CustomizationDone]) -> None:
        p = event.payload
        outcome = "ok" if p.error is None else f"failed: {p.error.kind.value}"
        if p.job_id is None:
            await self._note(event, f"training of {p.candidate_model} never started ({outcome})")
            return
        target = Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id=p.job_id)
        await self._down(event, target, f"training job {p.job_id} done ({outcome})")

    async def on_eval_started(self, event: Envelope[EvalStarted]) -> None:
        p = event.payload
        target = Target(kind=ResourceKind.EVALUATION_JOB, resource_id=p.job_id)
        summary = f"{p.eval_type.value} evaluation job {p.job_id} started"
        await self._up(event, target, p.target_model, summary)

    async def on_eval_progress(self, event: Envelope[EvalProgress]) -> None:
        target = Target(kind=ResourceKind.EVALUATION_JOB, resource_id=event.payload.job_id)
        await self._up(event, target, None, None)

    async def on_eval_done(self, event: Envelope[EvalDone]) -> None:
        p = event.payload
        outcome = "ok" if p.error is None else f"failed: {p.error.kind.value}"
        if p.job_id is None:
            await self._note(event, f"{p.eval_type.value} evaluation never started ({outcome})")
            return
        target = Target(kind=ResourceKind.EVALUATION_JOB, resource_id=p.job_id)
        summary = f"{p.eval_type.value} evaluation job {p.job_id} done ({outcome})"
        await self._down(event, target, summary)

    # Outside runs.

    async def on_system_shutdown(self, event: Envelope[SystemShutdown]) -> None:
        p = event.payload
        reason = p.reason if p.requested_by is None else f"{p.reason} (by {p.requested_by})"
        mark = ShutdownMark(
            event_id=str(event.event_id),
            at=event.occurred_at,
            cause=stored(event),
            reason=reason,
        )
        await self._ledger.record_shutdown(mark)
        await self._ledger.mark_terminal_up_to(mark.at, _shutdown_terminal(mark))
        ended = {run.run_id for run in await self._ledger.runs_ended_by(mark.event_id)}
        # Runs that ended earlier but still hold something (a reclaim that failed) go too.
        for resource in await self._ledger.live_resources():
            run = await self._ledger.get_run(resource.run_id)
            if run is not None and run.terminal is not None:
                ended.add(resource.run_id)
        for run_id in sorted(ended):
            await self._ledger.add_task(_shutdown_task(mark, run_id, self._clock()))
        _log.info("janitor.shutdown_recorded", runs=len(ended))
        self._wake()

    async def on_service_stopping(self, event: Envelope[ServiceStopping]) -> None:
        p = event.payload
        instance = StoppedInstance(
            event_id=str(event.event_id),
            service=p.service,
            instance=p.instance,
            stopped_at=event.occurred_at,
            in_flight=tuple(
                InFlightEntry(run_id=w.run_id, kind=w.kind, resource_id=w.resource_id)
                for w in p.in_flight
            ),
        )
        await self._ledger.record_stopping(instance)
        for index, work in enumerate(p.in_flight):
            if work.run_id == NO_RUN:  # a janitor's orphan reclaim: no run to note it against
                continue
            held = work.kind if work.resource_id is None else f"{work.kind} {work.resource_id}"
            summary = f"{p.service} instance {p.instance} stopped holding {held}"
            origin = _Origin(event, work.run_id, entry=str(index))
            if work.resource_id is not None and work.kind in _RESOURCE_KINDS:
                # Work in flight may already exist in NMP before its own event says so (a
                # deployment not yet ready): watch over it as live until the run says otherwise.
                target = Target(kind=ResourceKind(work.kind), resource_id=work.resource_id)
                await self._up(origin, target, None, summary)
            else:
                await self._note(origin, summary)
        _log.info(
            "janitor.instance_stopped",
            service=p.service,
            instance=p.instance,
            in_flight=len(p.in_flight),
        )

    # Shared steps.

    async def _note(
        self,
        origin: "_Origin | Envelope[Any]",
        summary: str | None,
        *,
        workload_id: str | None = None,
        client_id: str | None = None,
    ) -> RunRecord:
        """Record the event against its run (and in its history when `summary` is given)."""
        origin = _Origin.of(origin)
        event = origin.event
        run = await self._ledger.touch_run(
            RunFacts(origin.run_id, event.occurred_at, event.event_type, workload_id, client_id)
        )
        if summary is not None:
            await self._ledger.add_history(
                HistoryEntry(
                    run_id=origin.run_id,
                    entry_id=origin.entry_id,
                    at=event.occurred_at,
                    kind=event.event_type,
                    summary=summary,
                )
            )
        if run.terminal is None:
            run = await self._end_if_shut_down(run)
        return run

    async def _end_if_shut_down(self, run: RunRecord) -> RunRecord:
        mark = await self._ledger.latest_shutdown()
        if mark is None or run.first_event_at > mark.at:
            return run
        terminal = await self._ledger.end_run(run.run_id, _shutdown_terminal(mark))
        await self._ledger.add_task(_shutdown_task(mark, run.run_id, self._clock()))
        _log.info("janitor.run_ended_by_shutdown", run_id=str(run.run_id))
        self._wake()
        return run.model_copy(update={"terminal": terminal})

    async def _up(
        self,
        origin: "_Origin | Envelope[Any]",
        target: Target,
        detail: str | None,
        summary: str | None,
    ) -> None:
        origin = _Origin.of(origin)
        # Recorded before the run is read: a cancel handled meanwhile then finds the resource.
        await self._ledger.record_up(origin.run_id, target, origin.event.occurred_at, detail)
        run = await self._note(origin, summary)
        if run.terminal is None:
            return
        reason = f"{target.ref.id} appeared after the run ended: {run.terminal.reason}"
        _log.warning("janitor.late_resource", resource=target.ref.id, trigger=run.terminal.trigger)
        await self._add_task(origin, run.terminal.trigger, reason, always_report=False)

    async def _down(self, event: Envelope[Any], target: Target, summary: str) -> None:
        origin = _Origin.of(event)
        await self._ledger.record_down(origin.run_id, target, event.occurred_at)
        await self._note(origin, summary)

    async def _end(
        self,
        event: Envelope[Any],
        trigger: ReclaimTrigger,
        reason: str,
        *,
        always_report: bool,
        even_if_ended: bool = False,
    ) -> None:
        run = await self._note(event, reason)
        terminal = Terminal(
            trigger=trigger,
            reason=reason,
            event_type=event.event_type,
            cause_id=str(event.event_id),
            at=event.occurred_at,
        )
        stored = await self._ledger.end_run(run.run_id, terminal)
        # Otherwise a second terminal event (run.failed after run.cancelled) reports leftovers.
        first = stored.cause_id == terminal.cause_id
        report = always_report and (first or even_if_ended)
        await self._add_task(_Origin.of(event), trigger, reason, always_report=report)

    async def _add_task(
        self, origin: "_Origin", trigger: ReclaimTrigger, reason: str, *, always_report: bool
    ) -> None:
        task = ReclaimTask(
            task_id=origin.entry_id,
            run_id=origin.run_id,
            trigger=trigger,
            reason=reason,
            cause=stored(origin.event),
            discriminator=origin.entry,
            always_report=always_report,
            created_at=self._clock(),
        )
        if await self._ledger.add_task(task):
            self._wake()


@dataclass(frozen=True)
class _Origin:
    """An event as it concerns one run: run-scoped events concern their own run; an event
    outside runs (`service.stopping`) concerns each run it names, told apart by `entry`."""

    event: Envelope[Any]
    run_id: UUID
    entry: str = ""

    @classmethod
    def of(cls, source: "_Origin | Envelope[Any]") -> "_Origin":
        if isinstance(source, _Origin):
            return source
        return cls(source, source.scoped_run_id)

    @property
    def entry_id(self) -> str:
        """Id of what this origin writes (history entry, task): the event id, plus `entry`."""
        return f"{self.event.event_id}:{self.entry}" if self.entry else str(self.event.event_id)


_RESOURCE_KINDS = frozenset(kind.value for kind in ResourceKind)


def _shutdown_terminal(mark: ShutdownMark) -> Terminal:
    return Terminal(
        trigger=ReclaimTrigger.SYSTEM_SHUTDOWN,
        reason=mark.reason,
        event_type=SystemShutdown.EVENT_TYPE,
        cause_id=mark.event_id,
        at=mark.at,
    )


def _shutdown_task(mark: ShutdownMark, run_id: UUID, now: datetime) -> ReclaimTask:
    """One task per run, whoever notices first (the shutdown handler or a later event)."""
    return ReclaimTask(
        task_id=f"{mark.event_id}:{run_id}",
        run_id=run_id,
        trigger=ReclaimTrigger.SYSTEM_SHUTDOWN,
        reason=mark.reason,
        cause=mark.cause,
        discriminator=str(run_id),
        always_report=False,
        created_at=now,
    )
