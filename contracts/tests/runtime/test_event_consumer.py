"""The event consume loop's rules, without Kafka: order, commits, a FAILED message holding its
partition until its redelivery, and a stop that neither waits the delay out nor loses work."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import pytest

from flywheel_contracts.runtime.consumer import PartitionKey
from flywheel_contracts.runtime.consumer_health import StallGate
from flywheel_contracts.runtime.delivery import Origin, Outcome
from flywheel_contracts.runtime.dispatcher import InboundMessage
from flywheel_contracts.runtime.event_consumer import EventConsumer

pytestmark = pytest.mark.unit


class Message:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"{}"

    def headers(self) -> list[tuple[str, bytes]]:
        return [("h", b"v")]


class Reader:
    """Hands out `batches` one per read, then nothing; records commits, holds and releases."""

    def __init__(self, *batches: list[Message]) -> None:
        self.batches = list(batches)
        self.commits: list[dict[PartitionKey, int]] = []
        self.holds: list[tuple[str, int, int]] = []
        self.releases: list[tuple[str, int]] = []
        self.closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closed = True

    async def next_messages(self, max_messages: int, timeout_s: float) -> list[Any]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(timeout_s)
        return []

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        if offsets:
            self.commits.append(dict(offsets))

    async def hold(self, topic: str, partition: int, offset: int) -> None:
        self.holds.append((topic, partition, offset))

    async def release(self, topic: str, partition: int) -> None:
        self.releases.append((topic, partition))


class Dispatcher:
    def __init__(self, outcomes: Mapping[tuple[int, int], Outcome] | None = None) -> None:
        self.outcomes = dict(outcomes or {})
        self.seen: list[tuple[int, int]] = []
        self.delay_s = 0.0

    async def dispatch(self, message: InboundMessage) -> Outcome:
        position = (message.origin.partition, message.origin.offset)
        self.seen.append(position)
        if position == (9, 9):
            raise RuntimeError("a bug in dispatch")
        return self.outcomes.get(position, Outcome.OK)

    def redelivery_delay(self, origin: Origin | None) -> float:
        return self.delay_s


async def _until(done: Any, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the loop did not get there")


async def _run_until(loop: EventConsumer, done: Any, timeout_s: float = 5.0) -> None:
    task = asyncio.create_task(loop.run())
    await _until(done, timeout_s)
    loop.stop()
    await asyncio.wait_for(task, timeout_s)


async def test_messages_are_handled_in_order_and_committed_after_their_batch() -> None:
    reader = Reader([Message(0, 0), Message(1, 0), Message(0, 1)], [Message(0, 2)])
    dispatcher = Dispatcher()
    await _run_until(EventConsumer(reader, dispatcher), lambda: len(dispatcher.seen) == 4)
    assert dispatcher.seen == [(0, 0), (1, 0), (0, 1), (0, 2)]
    assert reader.commits == [{("t", 0): 2, ("t", 1): 1}, {("t", 0): 3}]
    assert reader.closed


async def test_a_failed_message_holds_its_partition_and_releases_it_after_the_delay() -> None:
    batch = [Message(0, 0), Message(0, 1), Message(1, 0), Message(0, 2), Message(1, 1)]
    reader = Reader(batch)
    dispatcher = Dispatcher({(0, 1): Outcome.FAILED})
    await _run_until(EventConsumer(reader, dispatcher), lambda: reader.releases)
    assert dispatcher.seen == [(0, 0), (0, 1), (1, 0), (1, 1)]  # (0, 2) waits behind (0, 1)
    assert reader.holds == [("t", 0, 1)]
    assert reader.releases == [("t", 0)]
    assert reader.commits == [{("t", 0): 1, ("t", 1): 2}]


async def test_other_partitions_go_on_while_one_waits_out_its_delay() -> None:
    reader = Reader([Message(0, 0)], [Message(1, 0)], [Message(1, 1)])
    dispatcher = Dispatcher({(0, 0): Outcome.FAILED})
    dispatcher.delay_s = 60.0
    await _run_until(EventConsumer(reader, dispatcher), lambda: len(dispatcher.seen) == 3, 2.0)
    assert dispatcher.seen == [(0, 0), (1, 0), (1, 1)]
    assert reader.holds == [("t", 0, 0)] and reader.releases == []
    assert reader.commits == [{("t", 1): 1}, {("t", 1): 2}]


async def test_a_partition_is_released_when_its_delay_is_up_on_the_loops_clock() -> None:
    now = [0.0]
    reader = Reader([Message(0, 0)])
    dispatcher = Dispatcher({(0, 0): Outcome.FAILED})
    dispatcher.delay_s = 30.0
    loop = EventConsumer(reader, dispatcher, clock=lambda: now[0])
    task = asyncio.create_task(loop.run())
    await _until(lambda: reader.holds)
    now[0] = 29.9
    await asyncio.sleep(0.3)
    assert reader.releases == []
    now[0] = 30.0
    await _until(lambda: reader.releases)
    loop.stop()
    await asyncio.wait_for(task, 2)
    assert reader.releases == [("t", 0)]


async def test_a_dispatch_that_raises_is_redelivered_not_skipped() -> None:
    reader = Reader([Message(9, 9), Message(9, 10)])
    await _run_until(EventConsumer(reader, Dispatcher()), lambda: reader.releases)
    assert reader.holds == [("t", 9, 9)]
    assert reader.commits == []


async def test_a_stop_during_the_delay_commits_what_was_handled_and_leaves_the_rest() -> None:
    reader = Reader([Message(0, 0), Message(0, 1)])
    dispatcher = Dispatcher({(0, 1): Outcome.FAILED})
    dispatcher.delay_s = 60.0
    loop = EventConsumer(reader, dispatcher)
    task = asyncio.create_task(loop.run())
    await _until(lambda: len(dispatcher.seen) == 2)
    loop.stop()
    await asyncio.wait_for(task, 2)
    assert reader.releases == []  # whoever holds the partition next reads (0, 1) again
    assert reader.commits == [{("t", 0): 1}]


async def test_a_stalled_loop_handles_nothing_until_resumed() -> None:
    reader = Reader([Message(0, 0)])
    dispatcher = Dispatcher()
    gate = StallGate()
    gate.stall()
    loop = EventConsumer(reader, dispatcher, stall=gate)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.1)
    assert dispatcher.seen == []
    gate.resume()
    await _until(lambda: dispatcher.seen)
    loop.stop()
    await asyncio.wait_for(task, 2)
    assert reader.commits == [{("t", 0): 1}]


async def test_the_message_reaches_the_dispatcher_as_read() -> None:
    received: list[InboundMessage] = []

    class Recording(Dispatcher):
        async def dispatch(self, message: InboundMessage) -> Outcome:
            received.append(message)
            return Outcome.OK

    await _run_until(EventConsumer(Reader([Message(3, 7)]), Recording()), lambda: received)
    assert received == [
        InboundMessage(
            origin=Origin(topic="t", partition=3, offset=7),
            key=b"k",
            value=b"{}",
            headers=[("h", b"v")],
        )
    ]
