"""Deduplication in a process of its own: the same verdicts as in this process, pages answered in
order while later ones are queued, a clear error when the process dies, nothing left behind."""

import asyncio
from typing import Any

import pytest

from flywheel_datasets.dedup import Offer
from flywheel_datasets.dedup_worker import (
    Deduplication,
    DeduplicationFactory,
    inline_deduplication,
    process_deduplication,
)
from flywheel_datasets.errors import DeduplicationFailed
from flywheel_datasets.rules import Rule

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

PAGES: list[list[Offer]] = [
    [(0, ["Where is ORD-1?"]), (0, ["where is ord 1"]), (1, ["Where is ORD-1?"])],
    [],
    [(1, ["Where is ORD-1?"]), (0, ["Cancel ORD-2", "today, please"]), (0, ["Where is ORD-1?"])],
]
EXPECTED: list[list[Rule | None]] = [
    [None, Rule.NEAR_DUPLICATE, None],
    [],
    [Rule.DUPLICATE, None, Rule.DUPLICATE],
]


async def _answers(factory: DeduplicationFactory) -> list[list[Rule | None]]:
    async with factory(0.8, 2) as deduplication:
        for offers in PAGES:  # all pages queued before the first answer is read
            await deduplication.submit(offers)
        return [await deduplication.verdicts() for _ in PAGES]


async def _round(deduplication: Deduplication, offers: list[Offer]) -> list[Rule | None]:
    await deduplication.submit(offers)
    return await deduplication.verdicts()


@pytest.mark.parametrize("factory", [inline_deduplication, process_deduplication])
async def test_pages_are_answered_in_order(factory: DeduplicationFactory) -> None:
    assert await _answers(factory) == EXPECTED


async def test_a_dead_process_fails_the_read_and_nothing_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def recorded(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await spawn(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recorded)
    async with process_deduplication(0.8, 2) as deduplication:
        assert await _round(deduplication, PAGES[0]) == EXPECTED[0]
        started[0].kill()
        await started[0].wait()
        with pytest.raises(DeduplicationFailed, match="exit code -9"):
            await _round(deduplication, PAGES[2])
    async with process_deduplication(0.8, 2) as deduplication:
        await deduplication.submit(PAGES[0])  # left unanswered: the read stopped early
    assert [process.returncode for process in started] == [-9, -9]
