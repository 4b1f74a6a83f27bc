"""The GPU scheduler: which queued deployments may start now within the budget. Pure.

First come, first served, with backfill: when the oldest request (the head) does not fit, later
requests may start only if they cannot delay the head, whatever order the running deployments
finish in. Deployments have no known duration, so "cannot delay" is checked against every
possible release order: for each set of running deployments whose release would let the head
start, the head must still fit with the backfilled request holding its GPUs. It suffices to check
the smallest such release (the head's earliest chance), found by a subset sum over the running
allocations.
"""

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Request(Generic[K]):
    """A queued deployment asking for `gpus` GPUs, identified by `key`."""

    key: K
    gpus: int


@dataclass(frozen=True)
class Plan(Generic[K]):
    """What to do with the queue now."""

    start: tuple[K, ...]
    """Grant these, in this order."""
    impossible: tuple[K, ...]
    """These ask for more than the whole budget and can never start."""


def plan(budget: int, running: Iterable[int], queue: Sequence[Request[K]]) -> Plan[K]:
    """Grants for `queue` (oldest first) given the GPUs each running deployment holds.

    Never grants past `budget`, even if `running` already exceeds it (e.g. after the budget was
    lowered): then nothing starts until enough is released.
    """
    held = [gpus for gpus in running if gpus > 0]
    free = budget - sum(held)
    start: list[K] = []
    impossible: list[K] = []
    head: Request[K] | None = None
    for request in queue:
        if request.gpus > budget:
            impossible.append(request.key)
            continue
        if head is None:
            if request.gpus > free:
                head = request  # blocked: everything behind it may only backfill around it
                continue
        elif request.gpus > min(free, _spare_when_head_starts(free, held, head.gpus)):
            continue
        start.append(request.key)
        free -= request.gpus
        held.append(request.gpus)
    return Plan(start=tuple(start), impossible=tuple(impossible))


def _spare_when_head_starts(free: int, held: Sequence[int], need: int) -> int:
    """GPUs left over at the head's earliest possible start (negative: it cannot start)."""
    missing = need - free
    release = _smallest_sum_at_least(held, missing)
    return -1 if release is None else free + release - need


def _smallest_sum_at_least(values: Sequence[int], target: int) -> int | None:
    """The smallest sum of a subset of `values` that is >= `target`; None if none is."""
    if target <= 0:
        return 0
    sums = {0}
    for value in values:
        sums |= {s + value for s in sums}
    reaching = [s for s in sums if s >= target]
    return min(reaching) if reaching else None
