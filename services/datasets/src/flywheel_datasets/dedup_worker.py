"""Deduplication beside the read: the records of one page are deduplicated while the next page is
fetched and checked.

Deduplication is sequential by nature (the first copy wins), and on a large read it is about
half of the service's CPU. `process_deduplication` runs it in a process of its own
(`dedup_process`), on another core than the checks, the JSON and the HTTP of the read. The
process lives for one read and ends with it: killed when the read is done or abandoned, or on
its own when its stdin closes (the service died). `inline_deduplication` does the same work in
this process, in a worker thread: for reads too small to pay for starting a process.
"""

import asyncio
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import orjson

from flywheel_datasets.dedup import VERDICTS, Deduplicator, Offer, decide
from flywheel_datasets.dedup_process import FRAME_LENGTH
from flywheel_datasets.errors import DeduplicationFailed
from flywheel_datasets.rules import Rule


class Deduplication(Protocol):
    """Pages of offers in, verdicts out, in the order the pages went in."""

    async def submit(self, offers: Sequence[Offer]) -> None: ...

    async def verdicts(self) -> list[Rule | None]:
        """The verdicts on the oldest page submitted and not answered yet."""
        ...


# (near-duplicate threshold, number of streams) -> a deduplication for one read.
DeduplicationFactory = Callable[[float, int], AbstractAsyncContextManager[Deduplication]]


@asynccontextmanager
async def inline_deduplication(near_threshold: float, streams: int) -> AsyncIterator[Deduplication]:
    yield _Inline([Deduplicator(near_threshold) for _ in range(streams)])


@asynccontextmanager
async def process_deduplication(
    near_threshold: float, streams: int
) -> AsyncIterator[Deduplication]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flywheel_datasets.dedup_process",
        repr(near_threshold),
        str(streams),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield _Process(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


class _Inline:
    def __init__(self, streams: list[Deduplicator]) -> None:
        self._streams = streams
        self._waiting: deque[list[Offer]] = deque()

    async def submit(self, offers: Sequence[Offer]) -> None:
        self._waiting.append(list(offers))

    async def verdicts(self) -> list[Rule | None]:
        offers = self._waiting.popleft()
        return _verdicts(await asyncio.to_thread(decide, self._streams, offers))


class _Process:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._stdin = process.stdin
        self._stdout = process.stdout

    async def submit(self, offers: Sequence[Offer]) -> None:
        frame = orjson.dumps(offers)
        try:
            self._stdin.write(FRAME_LENGTH.pack(len(frame)))
            self._stdin.write(frame)
            await self._stdin.drain()
        except ConnectionError as exc:
            raise await self._failure() from exc

    async def verdicts(self) -> list[Rule | None]:
        try:
            (length,) = FRAME_LENGTH.unpack(await self._stdout.readexactly(FRAME_LENGTH.size))
            return _verdicts(await self._stdout.readexactly(length))
        except asyncio.IncompleteReadError as exc:
            raise await self._failure() from exc

    async def _failure(self) -> DeduplicationFailed:
        code = await self._process.wait()
        return DeduplicationFailed(f"the deduplication process stopped (exit code {code})")


def _verdicts(codes: bytes) -> list[Rule | None]:
    return [VERDICTS[code] for code in codes]
