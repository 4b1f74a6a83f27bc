"""The ledger's records: runs, the resources they hold, their history, and reclaim tasks.

A resource's liveness is built from flags, not from the order events arrive in: `seen_up` is set
by any event proving the resource exists (nim.up, *.started, *.progress), `seen_down` by the
event saying it ended (nim.down, *.done), `ended` by the janitor once it took the resource back.
A `done` consumed before its `started` therefore leaves the resource not live, as it should.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, PlainSerializer

from flywheel_contracts.events import ReclaimTrigger, ResourceKind, ResourceRef
from flywheel_contracts.primitives import MESSAGE_MAX

NO_RUN = UUID(int=0)
"""Run id of the reports about orphans: `resources.reclaimed` is run-scoped, orphans belong to
no run the janitor knows."""

RunId = Annotated[UUID, PlainSerializer(str)]
"""A run id, stored as its text (the kit's Mongo client has no UUID representation set)."""


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Outcome(StrEnum):
    """What reclaiming one resource came to."""

    RECLAIMED = "reclaimed"
    ALREADY_GONE = "already_gone"
    FAILED = "failed"
    SHARED = "shared"
    """Left alone: a run that has not ended holds the same resource."""


ENDED_OUTCOMES = frozenset({Outcome.RECLAIMED, Outcome.ALREADY_GONE, Outcome.SHARED})


class Target(Record):
    """One NMP resource: a deployment by namespace and name, or a job by id."""

    kind: ResourceKind
    resource_id: str
    namespace: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind.value}/{self.resource_id}"

    @property
    def ref(self) -> ResourceRef:
        """As reported: `namespace/name` for a deployment, the NMP id for a job."""
        if self.kind is ResourceKind.DEPLOYMENT and self.namespace:
            return ResourceRef(kind=self.kind, id=f"{self.namespace}/{self.resource_id}")
        return ResourceRef(kind=self.kind, id=self.resource_id)


class ResourceRecord(Record):
    run_id: RunId
    kind: ResourceKind
    resource_id: str = ""
    """Deployment name (nim.down carries no namespace) or NMP job id."""
    namespace: str | None = None
    detail: str | None = None
    """The model it serves, trains or evaluates, for people reading the ledger."""
    seen_up: bool = False
    seen_down: bool = False
    ended: bool = False
    first_seen_at: datetime
    up_at: datetime | None = None
    down_at: datetime | None = None
    outcome: Outcome | None = None
    error: str | None = None
    outcome_at: datetime | None = None
    outcome_task: str | None = None
    """The reclaim task that came to `outcome`: a retried task reuses what it already did."""

    @property
    def live(self) -> bool:
        return self.seen_up and not self.seen_down and not self.ended

    @property
    def target(self) -> Target:
        return Target(kind=self.kind, resource_id=self.resource_id, namespace=self.namespace)


class Terminal(Record):
    """Why a run is over for the janitor; later resources of the run are reclaimed at once."""

    trigger: ReclaimTrigger
    reason: str
    event_type: str
    cause_id: str
    at: datetime


class RunRecord(Record):
    run_id: RunId
    first_event_at: datetime
    """Earliest `occurred_at` of the run's events: places the run before or after a shutdown."""
    active_at: datetime
    """Latest `occurred_at` of its events, or of the janitor's last reclaim for it."""
    last_event_type: str
    workload_id: str | None = None
    client_id: str | None = None
    terminal: Terminal | None = None


class HistoryEntry(Record):
    run_id: RunId
    entry_id: str
    """The event id, so a redelivered event is written once."""
    at: datetime
    kind: str
    summary: str


class ReclaimTask(Record):
    """Work for the reclaimer, recorded by a handler or a sweep, done by the reconciler loop."""

    task_id: str
    run_id: RunId | None
    """None for orphans."""
    trigger: ReclaimTrigger
    reason: str
    cause: str | None = None
    """The triggering envelope, encoded: the report's ids are derived from it."""
    discriminator: str = ""
    targets: tuple[Target, ...] | None = None
    """Explicit resources (orphans); None means whatever the run holds when the task runs."""
    always_report: bool = True
    """Publish even when nothing was held; otherwise only when something was done or failed."""
    created_at: datetime
    report: str | None = None
    """The report envelope, encoded, once built: published until the task is done."""
    done: bool = False


class ShutdownMark(Record):
    """A `system.shutdown`: runs whose first event is not after `at` belong to the stopped
    flywheel, even when the janitor only hears of them later."""

    event_id: str
    at: datetime
    cause: str
    """The shutdown envelope, encoded: the per-run reports derive their ids from it."""
    reason: str


class InFlightEntry(Record):
    run_id: RunId
    kind: str
    resource_id: str | None = None


class StoppedInstance(Record):
    """A `service.stopping`: which instance stopped holding which work."""

    event_id: str
    service: str
    instance: str
    stopped_at: datetime
    in_flight: tuple[InFlightEntry, ...] = ()


def message(text: str) -> str:
    """`text` cut to what a `Message` field accepts (never empty)."""
    return (text or "unknown")[:MESSAGE_MAX]
