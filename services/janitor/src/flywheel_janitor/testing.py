"""Fakes of the janitor's ports for unit tests.

`InMemoryLedger` is checked by the same ledger contract tests as `MongoLedger`, so the two cannot
drift apart.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.events import (
    CustomizationDone,
    CustomizationStarted,
    EvalDone,
    EvalStarted,
    NimDown,
    NimDownReason,
    NimUp,
)
from flywheel_contracts.examples import EXAMPLES
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime.testing import ManualClock as ManualClock
from flywheel_contracts.runtime.testing import RecordedEvents as RecordedEvents
from flywheel_janitor.ledger import (
    ENDED_OUTCOMES,
    HistoryEntry,
    Outcome,
    ReclaimTask,
    ResourceRecord,
    RunRecord,
    ShutdownMark,
    StoppedInstance,
    Target,
    Terminal,
)
from flywheel_janitor.ports import ReclaimResult, RunFacts

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
"""Where a `ManualClock` starts."""


class RunEvents:
    """Envelopes of one run, each `minutes` after T0."""

    def __init__(self, run_id: UUID | None = None) -> None:
        self.run_id = run_id or uuid4()

    def __call__(
        self, payload: EventPayload, minutes: float = 0, producer: str = "nim-manager"
    ) -> Envelope[Any]:
        return new_event(
            payload,
            producer=producer,
            run_id=self.run_id if payload.RUN_SCOPED else None,
            occurred_at=T0 + timedelta(minutes=minutes),
        )


@dataclass
class FakeResources:
    """NMP as a set of existing `Target.key`s; `fail` gives a key the error its reclaim gets."""

    existing: set[str] = field(default_factory=set)
    fail: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def reclaim(self, target: Target) -> ReclaimResult:
        self.calls.append(target.key)
        if target.key in self.fail:
            return ReclaimResult(Outcome.FAILED, self.fail[target.key])
        if target.key in self.existing:
            self.existing.discard(target.key)
            return ReclaimResult(Outcome.RECLAIMED)
        return ReclaimResult(Outcome.ALREADY_GONE)


@dataclass
class FakeInventory:
    running: list[Target] = field(default_factory=list)

    async def live_resources(self) -> list[Target]:
        return list(self.running)


class InMemoryLedger:
    def __init__(self) -> None:
        self.runs: dict[UUID, RunRecord] = {}
        self.resources: dict[tuple[UUID, str], ResourceRecord] = {}
        self.entries: dict[tuple[UUID, str], HistoryEntry] = {}
        self.tasks: dict[str, ReclaimTask] = {}
        self.shutdowns: dict[str, ShutdownMark] = {}
        self.orphans: dict[str, datetime] = {}
        self.instances: dict[str, StoppedInstance] = {}

    # Runs.

    async def touch_run(self, facts: RunFacts) -> RunRecord:
        run = self.runs.get(facts.run_id)
        if run is None:
            run = RunRecord(
                run_id=facts.run_id,
                first_event_at=facts.at,
                active_at=facts.at,
                last_event_type=facts.event_type,
            )
        update: dict[str, object] = {
            "first_event_at": min(run.first_event_at, facts.at),
            "active_at": max(run.active_at, facts.at),
            "last_event_type": facts.event_type,
        }
        if facts.workload_id is not None:
            update["workload_id"] = facts.workload_id
        if facts.client_id is not None:
            update["client_id"] = facts.client_id
        self.runs[facts.run_id] = run = run.model_copy(update=update)
        return run

    async def get_run(self, run_id: UUID) -> RunRecord | None:
        return self.runs.get(run_id)

    async def end_run(self, run_id: UUID, terminal: Terminal) -> Terminal:
        run = self.runs.get(run_id)
        if run is None:
            raise LookupError(f"run {run_id} is not in the ledger")
        if run.terminal is None:
            self.runs[run_id] = run = run.model_copy(update={"terminal": terminal})
        assert run.terminal is not None
        return run.terminal

    async def mark_terminal_up_to(self, cutoff: datetime, terminal: Terminal) -> None:
        for run_id, run in self.runs.items():
            if run.terminal is None and run.first_event_at <= cutoff:
                self.runs[run_id] = run.model_copy(update={"terminal": terminal})

    async def runs_ended_by(self, cause_id: str) -> list[RunRecord]:
        return [r for r in self.runs.values() if r.terminal and r.terminal.cause_id == cause_id]

    async def mark_active(self, run_id: UUID, at: datetime) -> None:
        run = self.runs.get(run_id)
        if run is not None:
            self.runs[run_id] = run.model_copy(update={"active_at": max(run.active_at, at)})

    async def quiet_runs(self, run_ids: Sequence[UUID], before: datetime) -> list[RunRecord]:
        return [
            run
            for run_id in run_ids
            if (run := self.runs.get(run_id)) is not None and run.active_at < before
        ]

    # Resources.

    def _resource(self, run_id: UUID, target: Target, at: datetime) -> ResourceRecord:
        return self.resources.get((run_id, target.key)) or ResourceRecord(
            run_id=run_id, kind=target.kind, resource_id=target.resource_id, first_seen_at=at
        )

    def _put(self, record: ResourceRecord, **update: object) -> None:
        self.resources[(record.run_id, record.target.key)] = record.model_copy(update=update)

    async def record_up(
        self, run_id: UUID, target: Target, at: datetime, detail: str | None = None
    ) -> None:
        record = self._resource(run_id, target, at)
        self._put(
            record,
            seen_up=True,
            namespace=target.namespace or record.namespace,
            detail=detail or record.detail,
            up_at=min(record.up_at or at, at),
            first_seen_at=min(record.first_seen_at, at),
        )

    async def record_down(self, run_id: UUID, target: Target, at: datetime) -> None:
        record = self._resource(run_id, target, at)
        self._put(
            record,
            seen_down=True,
            down_at=min(record.down_at or at, at),
            first_seen_at=min(record.first_seen_at, at),
        )

    async def record_outcome(
        self, run_id: UUID, target: Target, result: ReclaimResult, *, at: datetime, task_id: str
    ) -> None:
        record = self.resources.get((run_id, target.key))
        if record is not None:
            self._put(
                record,
                outcome=result.outcome,
                error=result.error,
                outcome_at=at,
                outcome_task=task_id,
                ended=record.ended or result.outcome in ENDED_OUTCOMES,
            )

    async def live_resources(self, run_id: UUID | None = None) -> list[ResourceRecord]:
        return sorted(
            (r for r in self.resources.values() if r.live and run_id in (None, r.run_id)),
            key=lambda r: r.first_seen_at,
        )

    async def resources_of(self, run_id: UUID) -> list[ResourceRecord]:
        return sorted(
            (r for r in self.resources.values() if r.run_id == run_id),
            key=lambda r: r.first_seen_at,
        )

    # History.

    async def add_history(self, entry: HistoryEntry) -> None:
        self.entries.setdefault((entry.run_id, entry.entry_id), entry)

    async def history(self, run_id: UUID) -> list[HistoryEntry]:
        return sorted((e for e in self.entries.values() if e.run_id == run_id), key=lambda e: e.at)

    # Reclaim tasks.

    async def add_task(self, task: ReclaimTask) -> bool:
        if task.task_id in self.tasks:
            return False
        self.tasks[task.task_id] = task
        return True

    async def pending_tasks(self, limit: int) -> list[ReclaimTask]:
        pending = sorted((t for t in self.tasks.values() if not t.done), key=lambda t: t.created_at)
        return pending[:limit]

    async def has_pending_task(self, run_id: UUID) -> bool:
        return any(t.run_id == run_id and not t.done for t in self.tasks.values())

    async def save_report(self, task_id: str, report: str) -> None:
        self.tasks[task_id] = self.tasks[task_id].model_copy(update={"report": report})

    async def finish_task(self, task_id: str) -> None:
        self.tasks[task_id] = self.tasks[task_id].model_copy(update={"done": True})

    # Shutdowns, orphans and stopped instances.

    async def record_shutdown(self, mark: ShutdownMark) -> None:
        self.shutdowns.setdefault(mark.event_id, mark)

    async def latest_shutdown(self) -> ShutdownMark | None:
        return max(self.shutdowns.values(), key=lambda m: m.at, default=None)

    async def sight_orphans(self, targets: Sequence[Target], now: datetime) -> dict[str, datetime]:
        keys = {target.key for target in targets}
        self.orphans = {key: self.orphans.get(key, now) for key in keys}
        return dict(self.orphans)

    async def forget_orphans(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.orphans.pop(key, None)

    async def record_stopping(self, instance: StoppedInstance) -> None:
        self.instances.setdefault(instance.event_id, instance)

    async def stopped_instances(self, limit: int) -> list[StoppedInstance]:
        newest = sorted(self.instances.values(), key=lambda i: i.stopped_at, reverse=True)
        return newest[:limit]


# Payloads of the events that build the ledger, from the golden examples.

_NIM_UP: NimUp = EXAMPLES["nim.up"].payload
_CUSTOMIZATION_DONE: CustomizationDone = EXAMPLES["customization.done"].payload
_EVAL_DONE: EvalDone = EXAMPLES["eval.done"].payload


def nim_up(name: str, namespace: str = "dfwbp", model: str | None = None) -> NimUp:
    deployment = _NIM_UP.deployment.model_copy(
        update={
            "name": name,
            "namespace": namespace,
            "model_id": model or _NIM_UP.deployment.model_id,
        }
    )
    return _NIM_UP.model_copy(update={"deployment": deployment})


def nim_down(name: str) -> NimDown:
    return NimDown(
        candidate_model=_NIM_UP.candidate.model_name,
        deployment_name=name,
        reason=NimDownReason.FINISHED,
        deployment_seconds=1.0,
    )


def customization_started(job_id: str) -> CustomizationStarted:
    return CustomizationStarted(
        candidate_model=_CUSTOMIZATION_DONE.candidate_model,
        job_id=job_id,
        output_model=f"dfwbp/customized-model@{job_id}",
    )


def customization_done(job_id: str) -> CustomizationDone:
    return _CUSTOMIZATION_DONE.model_copy(update={"job_id": job_id})


def eval_started(job_id: str) -> EvalStarted:
    return EvalStarted(
        candidate_model=_EVAL_DONE.candidate_model,
        eval_type=_EVAL_DONE.eval_type,
        job_id=job_id,
        target_model=_EVAL_DONE.target_model,
    )


def eval_done(job_id: str) -> EvalDone:
    return _EVAL_DONE.model_copy(update={"job_id": job_id})
