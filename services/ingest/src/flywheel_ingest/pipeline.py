"""The consumption loop: batches by size and time, several in flight, offsets committed in order
and only once a batch's effects are all acknowledged.

While the oldest batch cannot be delivered (Elasticsearch or Kafka down), the pipeline fills up,
the source is paused (staying in its consumer group) and resumed when the batch goes through.
If the loop dies anyway, the kit restarts it and a fresh source resumes from the committed
offsets, so what was in flight is read again, never skipped.
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import structlog

from flywheel_ingest import metrics
from flywheel_ingest.config import BatchSettings, RetrySettings
from flywheel_ingest.documents import RawLine
from flywheel_ingest.ports import PartitionKey, Source
from flywheel_ingest.service import Delivered, IngestService

_IDLE_POLL_S = 0.1
"""Longest a fetch blocks, so finished batches are committed promptly."""

_log = structlog.get_logger("flywheel.ingest.pipeline")

SourceFactory = Callable[[], AbstractAsyncContextManager[Source]]


@dataclass(frozen=True, slots=True)
class _InFlight:
    task: "asyncio.Task[Delivered]"
    offsets: dict[PartitionKey, int]


def next_offsets(lines: Sequence[RawLine]) -> dict[PartitionKey, int]:
    """Per partition, the offset after the last line: what to commit once `lines` are done."""
    offsets: dict[PartitionKey, int] = {}
    for line in lines:
        key = (line.topic, line.partition)
        offsets[key] = max(offsets.get(key, 0), line.offset + 1)
    return offsets


class Pipeline:
    def __init__(
        self,
        open_source: SourceFactory,
        service: IngestService,
        batch: BatchSettings,
        retry: RetrySettings,
        *,
        drain_timeout_s: float,
    ) -> None:
        self._open_source = open_source
        self._service = service
        self._batch = batch
        self._pause_after_s = retry.pause_after_s
        self._drain_timeout_s = drain_timeout_s

    async def run(self) -> None:
        """Consume until cancelled; on cancellation, finish (briefly) what is in flight."""
        async with self._open_source() as source:
            in_flight: deque[_InFlight] = deque()
            try:
                while True:
                    await self._settle(source, in_flight)
                    lines = await self._next_batch(source)
                    if lines:
                        prepared = await asyncio.to_thread(self._service.prepare, lines)
                        task = asyncio.create_task(self._service.deliver(prepared))
                        in_flight.append(_InFlight(task, next_offsets(lines)))
            finally:
                await self._drain(source, in_flight)

    async def _next_batch(self, source: Source) -> list[RawLine]:
        """Lines until a size limit is reached or the first line is `max_wait_s` old."""
        lines: list[RawLine] = []
        size = 0
        deadline: float | None = None
        while len(lines) < self._batch.max_records and size < self._batch.max_bytes:
            wait = _IDLE_POLL_S if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            fetched = await source.fetch(
                self._batch.max_records - len(lines), min(wait, _IDLE_POLL_S)
            )
            if not fetched:
                if deadline is None:
                    break  # idle: go back and commit what finished
                continue
            if deadline is None:
                deadline = time.monotonic() + self._batch.max_wait_s
            lines += fetched
            size += sum(len(line.value) for line in fetched)
        return lines

    async def _settle(self, source: Source, in_flight: deque[_InFlight]) -> None:
        """Commit finished batches in order; while the pipeline is full, wait for the oldest."""
        while in_flight:
            head = in_flight[0]
            if not head.task.done():
                if len(in_flight) < self._batch.max_in_flight:
                    return
                await self._wait_for(source, head.task)
            # An unexpected error ends the loop with the batch still at the head, so nothing
            # after it is committed; the kit restarts the loop from the committed offsets.
            head.task.result()
            in_flight.popleft()
            await source.commit(head.offsets)

    async def _wait_for(self, source: Source, task: "asyncio.Task[Delivered]") -> None:
        done, _ = await asyncio.wait({task}, timeout=self._pause_after_s)
        if done:
            return
        _log.warning("consumption.paused", reason="a batch is waiting for its effects")
        await source.pause()
        metrics.PAUSED.set(1)
        try:
            while not task.done():
                await source.keep_alive()
        finally:
            metrics.PAUSED.set(0)
        await source.resume()
        _log.info("consumption.resumed")

    async def _drain(self, source: Source, in_flight: deque[_InFlight]) -> None:
        """Give in-flight batches a last chance to finish and commit them, in order."""
        if not in_flight:
            return
        tasks = [entry.task for entry in in_flight]
        await asyncio.wait(tasks, timeout=self._drain_timeout_s)
        committed = 0
        while in_flight and _succeeded(in_flight[0].task):
            await source.commit(in_flight.popleft().offsets)
            committed += 1
        for entry in in_flight:
            entry.task.cancel()
        await asyncio.gather(*(entry.task for entry in in_flight), return_exceptions=True)
        _log.info("pipeline.drained", committed=committed, abandoned=len(in_flight))


def _succeeded(task: "asyncio.Task[Delivered]") -> bool:
    return task.done() and not task.cancelled() and task.exception() is None
