"""A run's events gathered for its report: read back from the topics, or kept while following."""

from typing import Any
from uuid import uuid4

import pytest

from flywheel_contracts.cli.bus import Record
from flywheel_contracts.cli.runs import RUN_TOPICS, follow_run, read_run_events
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.report.sample import sample_run

from .conftest import FakeBus

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def _fail(record: Record, exc: InvalidEvent) -> None:
    raise AssertionError(f"{record}: {exc}")


def test_read_run_events_returns_the_runs_events_of_every_topic() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    bus = FakeBus()
    bus.add(*sample_run(uuid4()), *events)

    found = read_run_events(bus, run_id, _fail)

    assert sorted(e.event_id for e in found) == sorted(e.event_id for e in events)
    assert bus.reads == [RUN_TOPICS]


def test_following_a_run_hands_over_each_event_it_reads() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    bus = FakeBus()
    bus.add(*events)
    kept: list[Envelope[Any]] = []

    progress = follow_run(
        bus, run_id, timeout_s=10, on_change=lambda _p: None, on_invalid=_fail, on_event=kept.append
    )

    assert progress.completed is not None
    assert sorted(e.event_id for e in kept) == sorted(e.event_id for e in events)
