"""Fixtures of the janitor's unit tests: the service and the reclaimer on in-memory fakes."""

from __future__ import annotations

from functools import partial

import pytest

from flywheel_contracts.envelope import new_event
from flywheel_janitor.config import ReclaimSettings
from flywheel_janitor.reclaimer import Reclaimer
from flywheel_janitor.service import JanitorService
from flywheel_janitor.testing import (
    FakeResources,
    InMemoryLedger,
    ManualClock,
    RecordingSink,
    RunEvents,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger() -> InMemoryLedger:
    return InMemoryLedger()


@pytest.fixture
def nmp() -> FakeResources:
    return FakeResources()


@pytest.fixture
def published() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def reclaimer(
    ledger: InMemoryLedger, nmp: FakeResources, published: RecordingSink, clock: ManualClock
) -> Reclaimer:
    return Reclaimer(
        ledger,
        nmp,
        partial(new_event, producer="janitor"),
        published,
        ReclaimSettings(),
        clock=clock,
    )


@pytest.fixture
def service(ledger: InMemoryLedger, reclaimer: Reclaimer, clock: ManualClock) -> JanitorService:
    return JanitorService(ledger, wake=reclaimer.wake, clock=clock)


@pytest.fixture
def run() -> RunEvents:
    return RunEvents()
