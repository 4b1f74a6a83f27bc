"""The pure GPU scheduler: FCFS, backfill that never delays the head, never over budget."""

from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flywheel_nim_manager.scheduling import Request, plan

pytestmark = pytest.mark.unit


def _queue(*gpus: int) -> list[Request[str]]:
    return [Request(f"r{i}", g) for i, g in enumerate(gpus)]


def test_everything_that_fits_starts_in_order() -> None:
    assert plan(4, [], _queue(1, 1, 1)).start == ("r0", "r1", "r2")


def test_a_one_gpu_budget_starts_one_at_a_time() -> None:
    assert plan(1, [], _queue(1, 1, 1)).start == ("r0",)
    assert plan(1, [1], _queue(1, 1)).start == ()


def test_requests_larger_than_the_budget_are_impossible_and_block_nobody() -> None:
    decided = plan(2, [], _queue(3, 1, 1))
    assert decided.impossible == ("r0",)
    assert decided.start == ("r1", "r2")


def test_backfill_uses_gpus_the_head_cannot_use_anyway() -> None:
    # 2 of 4 held by one deployment: the head (3) waits for it; one GPU is spare even then.
    decided = plan(4, [2], _queue(3, 1, 1))
    assert decided.start == ("r1",)


def test_backfill_never_takes_gpus_the_head_will_need() -> None:
    # Head needs 2; 1 free; the running 1-GPU deployment frees exactly enough for it.
    assert plan(2, [1], _queue(2, 1)).start == ()


def test_backfill_considers_every_release_order() -> None:
    # 5 held as 3 + 2, 1 free, head needs 3: the 2-GPU deployment may end first (free 3, no
    # spare), so nothing may backfill, although the 3-GPU one ending would leave one spare.
    assert plan(6, [3, 2], _queue(3, 1)).start == ()
    # With 2 + 2 held and 2 free, the head (3) starts when either ends, leaving 1 spare.
    assert plan(6, [2, 2], _queue(3, 1, 1)).start == ("r1",)


def test_nothing_starts_while_over_a_lowered_budget() -> None:
    assert plan(2, [2, 1], _queue(1)).start == ()


_gpus = st.integers(min_value=1, max_value=4)


@given(
    budget=st.integers(min_value=1, max_value=8),
    running=st.lists(_gpus, max_size=5),
    queued=st.lists(_gpus, max_size=8),
)
def test_properties(budget: int, running: list[int], queued: list[int]) -> None:
    running = _fit(budget, running)
    queue = _queue(*queued)
    decided = plan(budget, running, queue)
    by_key = {r.key: r.gpus for r in queue}
    started = [by_key[k] for k in decided.start]
    free = budget - sum(running)

    # Never over budget; impossible means bigger than the whole budget.
    assert sum(running) + sum(started) <= budget
    assert all(by_key[k] > budget for k in decided.impossible)
    possible = [r for r in queue if r.gpus <= budget]
    if not possible:
        assert decided.start == ()
        return
    head = possible[0]
    # FCFS: the oldest possible request starts whenever it fits.
    if head.gpus <= free:
        assert decided.start[0] == head.key
        return
    # Otherwise the head waits, and whatever backfilled must not delay it in any release order:
    # whenever the releases would let it start without the backfill, they still do with it.
    assert head.key not in decided.start
    backfilled = sum(started)
    for size in range(len(running) + 1):
        for released in combinations(running, size):
            if free + sum(released) >= head.gpus:
                assert free - backfilled + sum(released) >= head.gpus


def _fit(budget: int, running: list[int]) -> list[int]:
    """The running allocations that fit the budget (as the scheduler keeps it)."""
    kept: list[int] = []
    for gpus in running:
        if sum(kept) + gpus <= budget:
            kept.append(gpus)
    return kept
