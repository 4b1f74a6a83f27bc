"""The consumption loop against a fake source: batching, in-order commits after the effects,
pausing while the store is down, and what happens on errors and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from flywheel_contracts.runtime.testing import eventually
from flywheel_contracts.traffic import generate_lines
from flywheel_ingest.config import BatchSettings, RetrySettings
from flywheel_ingest.documents import RawLine
from flywheel_ingest.pipeline import Pipeline, next_offsets
from flywheel_ingest.service import Delivered, IngestService, PreparedBatch

pytestmark = pytest.mark.unit

LINES = list(generate_lines(250, seed=12))


def _pipeline(
    source: Any, service: IngestService, *, max_in_flight: int = 2, max_wait_s: float = 0.05
) -> Pipeline:
    @asynccontextmanager
    async def opened() -> AsyncIterator[Any]:
        source.events.append("open")
        try:
            yield source
        finally:
            source.events.append("close")

    return Pipeline(
        opened,
        service,
        BatchSettings(max_records=100, max_in_flight=max_in_flight, max_wait_s=max_wait_s),
        RetrySettings(pause_after_s=0.05),
        drain_timeout_s=1.0,
    )


@asynccontextmanager
async def _running(pipeline: Pipeline) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(pipeline.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_next_offsets_are_per_partition_after_the_last_line() -> None:
    lines = [RawLine(b"", "t", 0, 5), RawLine(b"", "t", 1, 9), RawLine(b"", "t", 0, 7)]
    assert next_offsets(lines) == {("t", 0): 8, ("t", 1): 10}


async def test_batches_by_size_and_commits_each_once_it_is_stored(
    service: IngestService, store: Any, make_source: Any, lines_of: Any
) -> None:
    source = make_source(lines_of(LINES))
    async with _running(_pipeline(source, service)):
        await eventually(lambda: len(source.commits) == 3, timeout_s=5)
    assert [len(r) for r in store.requests] == [100, 100, 50]
    assert source.commits == [
        {("logs.raw", 0): 100},
        {("logs.raw", 0): 200},
        {("logs.raw", 0): 250},
    ]
    assert len(store.documents) == 250
    assert source.events[0] == "open" and source.events[-1] == "close"


async def test_a_batch_closes_when_its_first_line_is_max_wait_old(
    service: IngestService, store: Any, make_source: Any, lines_of: Any
) -> None:
    source = make_source(lines_of(LINES[:40]))
    trickle = source.fetch

    async def one_at_a_time(max_lines: int, timeout_s: float) -> list[RawLine]:
        await asyncio.sleep(0.01)
        lines: list[RawLine] = await trickle(1, timeout_s)
        return lines

    source.fetch = one_at_a_time
    async with _running(_pipeline(source, service, max_wait_s=0.05)):
        await eventually(lambda: len(store.documents) == 40, timeout_s=5)
    assert len(store.requests) > 2
    assert all(len(request) < 20 for request in store.requests)


async def test_nothing_is_committed_until_the_store_takes_the_batch_and_consumption_pauses(
    service: IngestService, store: Any, make_source: Any, lines_of: Any
) -> None:
    store.gate = asyncio.Event()  # Elasticsearch does not answer
    source = make_source(lines_of(LINES))
    async with _running(_pipeline(source, service, max_in_flight=2)):
        await eventually(lambda: source.paused and "keep_alive" in source.events, timeout_s=5)
        assert source.commits == []
        assert len(store.requests) == 2  # the pipeline is full: no third batch read
        store.gate.set()
        await eventually(lambda: len(source.commits) == 3, timeout_s=5)
    events = source.events
    assert events.index("pause") < events.index("resume") < events.index("commit")
    assert not source.paused
    assert [c[("logs.raw", 0)] for c in source.commits] == [100, 200, 250]


async def test_an_unexpected_failure_ends_the_loop_without_committing_past_it(
    service: IngestService, make_source: Any, lines_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliver = service.deliver

    async def fail_the_first(batch: PreparedBatch) -> Delivered:
        if batch.documents[0].source.offset == 0:
            await asyncio.sleep(0.05)  # let the second batch finish first
            raise RuntimeError("bug")
        return await deliver(batch)

    monkeypatch.setattr(service, "deliver", fail_the_first)
    source = make_source(lines_of(LINES))
    with pytest.raises(RuntimeError, match="bug"):
        await asyncio.wait_for(_pipeline(source, service).run(), timeout=5)
    assert source.commits == []
    assert source.events[-1] == "close"


async def test_shutdown_lets_in_flight_batches_finish_and_commits_them(
    service: IngestService, store: Any, make_source: Any, lines_of: Any
) -> None:
    store.gate = asyncio.Event()
    source = make_source(lines_of(LINES[:100]))
    task = asyncio.create_task(_pipeline(source, service).run())
    await eventually(lambda: len(store.requests) == 1, timeout_s=5)
    task.cancel()
    await asyncio.sleep(0.05)
    store.gate.set()
    await asyncio.gather(task, return_exceptions=True)
    assert source.commits == [{("logs.raw", 0): 100}]
