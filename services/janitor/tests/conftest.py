"""Fixtures of the janitor's unit tests: the service and the reclaimer on in-memory fakes."""

from __future__ import annotations

import pytest

from flywheel_janitor.config import ReclaimSettings
from flywheel_janitor.reclaimer import Reclaimer
from flywheel_janitor.service import JanitorService
from flywheel_janitor.testing import (
    T0,
    FakeResources,
    InMemoryLedger,
    ManualClock,
    RecordedEvents,
    RunEvents,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def ledger() -> InMemoryLedger:
    return InMemoryLedger()


@pytest.fixture
def nmp() -> FakeResources:
    return FakeResources()


@pytest.fixture
def published() -> RecordedEvents:
    return RecordedEvents("janitor")


@pytest.fixture
def reclaimer(
    ledger: InMemoryLedger, nmp: FakeResources, published: RecordedEvents, clock: ManualClock
) -> Reclaimer:
    return Reclaimer(
        ledger,
        nmp,
        published.new_event,
        published.publish,
        ReclaimSettings(),
        clock=clock,
    )


@pytest.fixture
def service(ledger: InMemoryLedger, reclaimer: Reclaimer, clock: ManualClock) -> JanitorService:
    return JanitorService(ledger, wake=reclaimer.wake, clock=clock)


@pytest.fixture
def run() -> RunEvents:
    return RunEvents()
