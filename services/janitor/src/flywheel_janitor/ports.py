"""What the janitor's logic needs from the outside: its ledger store and NMP (Kafka through the
kit's `NewEvent` and `Publish`)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from flywheel_contracts.runtime.clock import Clock as Clock  # the kit's
from flywheel_janitor.ledger import (
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


@dataclass(frozen=True)
class RunFacts:
    """What one event says about its run."""

    run_id: UUID
    at: datetime
    event_type: str
    workload_id: str | None = None
    client_id: str | None = None


class Ledger(Protocol):
    """The janitor's state (Mongo in production, in memory in unit tests)."""

    # Runs.
    async def touch_run(self, facts: RunFacts) -> RunRecord:
        """Create or update the run from one of its events; returns it as now stored."""
        ...

    async def get_run(self, run_id: UUID) -> RunRecord | None: ...

    async def end_run(self, run_id: UUID, terminal: Terminal) -> Terminal:
        """Give the (existing) run `terminal` unless it has ended already; returns the run's
        terminal reason as stored, this one or the earlier one."""
        ...

    async def mark_terminal_up_to(self, cutoff: datetime, terminal: Terminal) -> None:
        """End every run without a terminal reason whose first event is not after `cutoff`."""
        ...

    async def runs_ended_by(self, cause_id: str) -> list[RunRecord]: ...

    async def mark_active(self, run_id: UUID, at: datetime) -> None:
        """Push the run's `active_at` to `at` (never back)."""
        ...

    async def quiet_runs(self, run_ids: Sequence[UUID], before: datetime) -> list[RunRecord]:
        """The runs among `run_ids` with no activity since `before`."""
        ...

    # Resources.
    async def record_up(
        self,
        run_id: UUID,
        target: Target,
        at: datetime,
        detail: str | None = None,
    ) -> None: ...

    async def record_down(self, run_id: UUID, target: Target, at: datetime) -> None: ...

    async def record_outcome(
        self, run_id: UUID, target: Target, result: "ReclaimResult", *, at: datetime, task_id: str
    ) -> None:
        """What reclaiming the run's resource came to; an ended outcome makes it not live."""
        ...

    async def live_resources(self, run_id: UUID | None = None) -> list[ResourceRecord]:
        """Live resources of one run, or of every run."""
        ...

    async def resources_of(self, run_id: UUID) -> list[ResourceRecord]: ...

    # History.
    async def add_history(self, entry: HistoryEntry) -> None:
        """Append once: an entry id already there is ignored."""
        ...

    async def history(self, run_id: UUID) -> list[HistoryEntry]: ...

    # Reclaim tasks.
    async def add_task(self, task: ReclaimTask) -> bool:
        """Record a task; False when a task with its id exists already."""
        ...

    async def pending_tasks(self, limit: int) -> list[ReclaimTask]: ...

    async def has_pending_task(self, run_id: UUID) -> bool: ...

    async def save_report(self, task_id: str, report: str) -> None: ...

    async def finish_task(self, task_id: str) -> None: ...

    # Shutdowns, orphans and stopped instances.
    async def record_shutdown(self, mark: ShutdownMark) -> None: ...

    async def latest_shutdown(self) -> ShutdownMark | None: ...

    async def sight_orphans(self, targets: Sequence[Target], now: datetime) -> dict[str, datetime]:
        """Remember when each of `targets` was first seen unknown and forget the others;
        returns first sightings by `Target.key`."""
        ...

    async def forget_orphans(self, keys: Sequence[str]) -> None: ...

    async def record_stopping(self, instance: StoppedInstance) -> None: ...

    async def stopped_instances(self, limit: int) -> list[StoppedInstance]: ...


@dataclass(frozen=True)
class ReclaimResult:
    outcome: Outcome
    error: str | None = None


class ResourceReclaimer(Protocol):
    """Takes one resource back from NMP: delete a deployment, cancel a training job, delete an
    evaluation job, and wait until it is gone."""

    async def reclaim(self, target: Target) -> ReclaimResult: ...


class Inventory(Protocol):
    """What NMP actually runs in Flywheel's namespace."""

    async def live_resources(self) -> list[Target]: ...
