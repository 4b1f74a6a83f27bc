"""Issue 3, acceptance 4: publish-to-handled latency and envelope produce throughput on the
local Kafka, through the kit. Prints figures; asserts only that the work was done.

Targets: median hop < 50 ms; >= 20,000 envelopes/s produced. Also the kit's handled events/s
against a bare loop doing the same unavoidable work (read, decode, idempotency mark, commit) on the
same topic in the same run: what the kit's consume loop and dispatcher cost on top.
"""

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer
from pymongo import AsyncMongoClient

from flywheel_contracts.envelope import Envelope, decode, new_event
from flywheel_contracts.events import RunCancelled
from flywheel_contracts.runtime import ServiceKit
from flywheel_contracts.runtime.idempotency import ProcessedEvents
from flywheel_contracts.runtime.publisher import Publisher
from flywheel_contracts.runtime.settings import ServiceSettings
from flywheel_contracts.runtime.testing import running

pytestmark = pytest.mark.benchmark

HOPS = 500
WARMUP_HOPS = 20
THROUGHPUT_EVENTS = 50_000
HANDLED_EVENTS = 3_000


def _events(count: int) -> list[Envelope[Any]]:
    return [
        new_event(RunCancelled(reason="benchmark"), producer="client", run_id=uuid.uuid4())
        for _ in range(count)
    ]


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def test_publish_to_handled_latency(
    make_topic: Callable[[], str], settings_for: Callable[..., ServiceSettings]
) -> None:
    topic = make_topic()
    kit = ServiceKit(settings_for())
    published_at: dict[uuid.UUID, float] = {}
    handled: asyncio.Queue[float] = asyncio.Queue()

    async def handle(event: Envelope[RunCancelled]) -> None:
        handled.put_nowait(time.perf_counter() - published_at[event.event_id])

    kit.subscribe(RunCancelled, handle, topic=topic)
    latencies: list[float] = []
    async with running(kit):
        # One event in flight at a time: each sample is a pure hop, not queueing.
        for event in _events(WARMUP_HOPS + HOPS):
            published_at[event.event_id] = time.perf_counter()
            await kit.publisher.publish(event, topic=topic)
            latencies.append(await asyncio.wait_for(handled.get(), 30))
    samples = [seconds * 1000 for seconds in latencies[WARMUP_HOPS:]]

    print(
        f"\npublish->handled over {HOPS} hops: median {statistics.median(samples):.1f} ms, "
        f"p99 {_percentile(samples, 0.99):.1f} ms, max {max(samples):.1f} ms (target median < 50)"
    )
    assert len(samples) == HOPS


async def test_envelope_produce_throughput(
    settings_for: Callable[..., ServiceSettings], make_topic: Callable[[], str]
) -> None:
    topic = make_topic()
    publisher = Publisher(settings_for().kafka, client_id="bench")
    publisher.start()
    events = _events(THROUGHPUT_EVENTS)
    try:
        await publisher.publish_many(events[:1000], topic=topic)  # connections and producer id
        started = time.perf_counter()
        await publisher.publish_many(events, topic=topic)
        elapsed = time.perf_counter() - started
    finally:
        await publisher.close()

    print(
        f"\nenvelope produce throughput: {THROUGHPUT_EVENTS / elapsed:,.0f} events/s "
        f"({THROUGHPUT_EVENTS} encoded, published and acknowledged in {elapsed:.2f} s; "
        "target >= 20,000)"
    )
    assert elapsed > 0


async def _bare_handling_s(settings: ServiceSettings, topic: str, count: int) -> float:
    """Seconds a bare loop takes to do the kit's unavoidable work on `count` events of `topic`:
    read them in batches, decode each, look up and write its idempotency mark, commit per batch.
    Timed from the first record read (the group join is not reading)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"bare-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo.url.get_secret_value(), tz_aware=True
    )
    processed = ProcessedEvents(
        mongo[settings.mongo.database], consumer=f"bare-{uuid.uuid4().hex[:8]}"
    )
    await processed.ensure_indexes()
    handled = 0
    started: float | None = None
    try:
        while handled < count:
            batch = await asyncio.to_thread(consumer.consume, 100, 1.0)
            if started is None and batch:
                started = time.perf_counter()
            for message in batch:
                event = decode(message.value() or b"")
                if not await processed.seen(event.event_id):
                    await processed.mark(event.event_id, event.event_type)
                handled += 1
            if batch:
                await asyncio.to_thread(consumer.commit, asynchronous=False)
        assert started is not None
        return time.perf_counter() - started
    finally:
        await asyncio.to_thread(consumer.close)
        await mongo.close()


async def test_handled_throughput_against_a_bare_consumer(
    settings_for: Callable[..., ServiceSettings], make_topic: Callable[[], str]
) -> None:
    topic = make_topic()
    settings = settings_for()
    publisher = Publisher(settings.kafka, client_id="bench")
    publisher.start()
    try:
        await publisher.publish_many(_events(HANDLED_EVENTS), topic=topic)
    finally:
        await publisher.close()
    bare_s = await _bare_handling_s(settings, topic, HANDLED_EVENTS)

    kit = ServiceKit(settings)
    times: list[float] = []
    all_handled = asyncio.Event()

    async def handle(_event: Envelope[RunCancelled]) -> None:
        times.append(time.perf_counter())
        if len(times) == HANDLED_EVENTS:
            all_handled.set()

    kit.subscribe(RunCancelled, handle, topic=topic)
    async with running(kit):
        await asyncio.wait_for(all_handled.wait(), 300)
    kit_s = times[-1] - times[0]

    print(
        f"\nhandled through the kit: {HANDLED_EVENTS / kit_s:,.0f} events/s "
        f"({HANDLED_EVENTS} in {kit_s:.2f} s); a bare loop doing the same reads, decoding, "
        f"idempotency marks and commits: {HANDLED_EVENTS / bare_s:,.0f} events/s; "
        f"kit / bare = {bare_s / kit_s:.2f}"
    )
    assert len(times) == HANDLED_EVENTS
