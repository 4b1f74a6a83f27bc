"""Following a run: when `watch` stops reading, and what it has seen by then."""

from collections.abc import Generator, Sequence
from typing import Any
from uuid import uuid4

import pytest

from flywheel_contracts.cli.bus import Batch, Offsets, Record
from flywheel_contracts.cli.progress import RunProgress, Status
from flywheel_contracts.cli.runs import follow_run
from flywheel_contracts.envelope import Envelope, encode
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.run_config import EvalType

from .conftest import golden

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

RUN = uuid4()


class ScriptedBus:
    """Yields the given batches of history, then idles, caught up, for as long as it is read."""

    def __init__(self, *batches: list[Envelope[Any]]) -> None:
        self.batches = batches
        self.idle_reads = 0

    def publish(self, envelope: Envelope[Any]) -> None:
        raise AssertionError("following a run publishes nothing")

    def read(
        self,
        topics: tuple[str, ...],
        *,
        from_beginning: bool,
        follow: bool,
        key: bytes | None = None,
    ) -> Generator[Batch, None, None]:
        for batch in self.batches:
            yield Batch([Record(e.event_type, 0, 0, e.key(), encode(e)) for e in batch], False)
        while True:
            self.idle_reads += 1
            yield Batch([], caught_up=True)

    def offsets(self) -> Offsets:
        raise AssertionError("following a run reads no offsets")

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        raise AssertionError("following a run sends nothing")


def fail_on_invalid(record: Record, exc: InvalidEvent) -> None:
    raise AssertionError(f"{record}: {exc}")


def follow(bus: ScriptedBus, timeout_s: float | None = None) -> tuple[RunProgress, int]:
    views: list[RunProgress] = []
    progress = follow_run(
        bus, RUN, timeout_s=timeout_s, on_change=views.append, on_invalid=fail_on_invalid
    )
    return progress, len(views)


def test_it_reads_on_past_the_ending_until_caught_up() -> None:
    bus = ScriptedBus([golden("run.completed", RUN)], [golden("eval.done", RUN)])
    progress, _ = follow(bus)
    assert progress.completed is not None
    step = progress.candidates["meta/llama-3.2-1b-instruct"].evaluations[EvalType.BASE]
    assert step.status is Status.DONE
    assert bus.idle_reads == 1


def test_it_shows_the_run_before_its_first_event() -> None:
    bus = ScriptedBus([], [golden("run.requested", RUN)], [golden("run.failed", RUN)])
    progress, views = follow(bus)
    assert progress.failed is not None
    assert views == 3  # the first (empty) read, then one per change


def test_it_gives_up_at_the_deadline() -> None:
    progress, _ = follow(ScriptedBus([golden("run.requested", RUN)]), timeout_s=0.05)
    assert not progress.finished
