"""Stale runs and orphans: found by the sweeps, reclaimed and reported by the reclaimer."""

from __future__ import annotations

import pytest

from flywheel_contracts.events import ReclaimTrigger, ResourceKind, ResourceRef, ResourcesReclaimed
from flywheel_janitor.config import SweepSettings
from flywheel_janitor.ledger import NO_RUN, Target
from flywheel_janitor.reclaimer import Reclaimer
from flywheel_janitor.service import JanitorService
from flywheel_janitor.sweeps import Sweeper
from flywheel_janitor.testing import (
    FakeInventory,
    FakeResources,
    InMemoryLedger,
    ManualClock,
    RecordedEvents,
    RunEvents,
    nim_down,
    nim_up,
)

pytestmark = pytest.mark.unit

HOUR = 3600.0
SETTINGS = SweepSettings(
    stale_after_s=3 * HOUR, orphan_grace_s=600, protected_deployments=frozenset({"judge"})
)


def _deployment(name: str) -> Target:
    return Target(kind=ResourceKind.DEPLOYMENT, resource_id=name, namespace="dfwbp")


@pytest.fixture
def inventory() -> FakeInventory:
    return FakeInventory()


@pytest.fixture
def sweeper(
    ledger: InMemoryLedger, inventory: FakeInventory, reclaimer: Reclaimer, clock: ManualClock
) -> Sweeper:
    return Sweeper(ledger, inventory, SETTINGS, wake=reclaimer.wake, clock=clock)


async def test_a_quiet_run_holding_resources_is_reclaimed_as_stale(
    service: JanitorService,
    sweeper: Sweeper,
    reclaimer: Reclaimer,
    nmp: FakeResources,
    published: RecordedEvents,
    clock: ManualClock,
) -> None:
    stale, busy, finished = RunEvents(), RunEvents(), RunEvents()
    await service.on_nim_up(stale(nim_up("dep-a")))
    await service.on_nim_up(busy(nim_up("dep-b")))
    await service.on_nim_up(busy(nim_up("dep-b"), minutes=170))  # a later event of the run
    await service.on_nim_up(finished(nim_up("dep-c")))
    await service.on_nim_down(finished(nim_down("dep-c"), minutes=1))
    nmp.existing.add("deployment/dep-a")
    clock.advance(3 * HOUR + 1)

    assert await sweeper.sweep_stale() == 1
    assert await sweeper.sweep_stale() == 0  # already pending
    await reclaimer.run_pending()

    (envelope,) = published.published
    report: ResourcesReclaimed = envelope.payload
    assert envelope.run_id == stale.run_id
    assert report.trigger is ReclaimTrigger.STALE_RUN
    assert report.reason.startswith("stale: no event for 10801s (limit 10800s)")
    assert report.reclaimed == (ResourceRef(kind=ResourceKind.DEPLOYMENT, id="dfwbp/dep-a"),)


async def test_a_failed_reclaim_is_tried_again_one_stale_period_later(
    service: JanitorService,
    sweeper: Sweeper,
    reclaimer: Reclaimer,
    ledger: InMemoryLedger,
    nmp: FakeResources,
    published: RecordedEvents,
    clock: ManualClock,
) -> None:
    run = RunEvents()
    await service.on_nim_up(run(nim_up("dep-a")))
    nmp.fail["deployment/dep-a"] = "503 busy"
    clock.advance(3 * HOUR + 1)
    await sweeper.sweep_stale()
    await reclaimer.run_pending()
    assert len(published.published[-1].payload.failed) == 1

    clock.advance(HOUR)
    assert await sweeper.sweep_stale() == 0
    del nmp.fail["deployment/dep-a"]
    clock.advance(2 * HOUR + 1)
    assert await sweeper.sweep_stale() == 1
    await reclaimer.run_pending()

    assert len(published.published[-1].payload.already_gone) == 1
    assert await ledger.live_resources() == []


async def test_an_unknown_resource_is_reclaimed_after_the_grace_period(
    service: JanitorService,
    sweeper: Sweeper,
    reclaimer: Reclaimer,
    inventory: FakeInventory,
    nmp: FakeResources,
    published: RecordedEvents,
    clock: ManualClock,
) -> None:
    run = RunEvents()
    await service.on_nim_up(run(nim_up("dep-known")))
    orphan = Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id="cust-9")
    inventory.running = [_deployment("dep-known"), _deployment("judge"), orphan]
    nmp.existing.add(orphan.key)

    assert await sweeper.sweep_orphans() == 0
    clock.advance(599)
    assert await sweeper.sweep_orphans() == 0
    clock.advance(1)
    assert await sweeper.sweep_orphans() == 1
    await reclaimer.run_pending()

    (envelope,) = published.published
    report: ResourcesReclaimed = envelope.payload
    assert envelope.run_id == NO_RUN
    assert report.trigger is ReclaimTrigger.STALE_RUN
    assert report.reason == "orphaned: unknown to Flywheel for over 600s"
    assert report.reclaimed == (orphan.ref,)
    assert nmp.calls == [orphan.key]


async def test_a_resource_that_leaves_the_list_starts_its_grace_period_again(
    sweeper: Sweeper, inventory: FakeInventory, clock: ManualClock
) -> None:
    inventory.running = [_deployment("dep-x")]
    await sweeper.sweep_orphans()
    clock.advance(300)
    inventory.running = []
    await sweeper.sweep_orphans()
    inventory.running = [_deployment("dep-x")]
    clock.advance(300)

    assert await sweeper.sweep_orphans() == 0


async def test_an_orphan_that_became_known_before_its_reclaim_is_left_alone(
    service: JanitorService,
    sweeper: Sweeper,
    reclaimer: Reclaimer,
    inventory: FakeInventory,
    nmp: FakeResources,
    clock: ManualClock,
) -> None:
    inventory.running = [_deployment("dep-late")]
    await sweeper.sweep_orphans()
    clock.advance(600)
    await sweeper.sweep_orphans()

    await service.on_nim_up(RunEvents()(nim_up("dep-late")))
    await reclaimer.run_pending()

    assert nmp.calls == []
