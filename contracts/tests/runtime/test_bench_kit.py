"""Issue 3, acceptance 4: publish-to-handled latency and envelope produce throughput on the
local Kafka, through the kit. Prints figures; asserts only that the work was done.

Targets: median hop < 50 ms; >= 20,000 envelopes/s produced.
"""

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.events import RunCancelled
from flywheel_contracts.runtime import ServiceKit
from flywheel_contracts.runtime.publisher import Publisher
from flywheel_contracts.runtime.settings import ServiceSettings
from flywheel_contracts.runtime.testing import running

pytestmark = pytest.mark.benchmark

HOPS = 500
WARMUP_HOPS = 20
THROUGHPUT_EVENTS = 50_000


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
