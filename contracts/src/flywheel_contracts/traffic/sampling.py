"""Fast random picks. ``Random.choices`` re-validates its arguments on every call, and
per-character ``randrange`` is slow; both sit on the per-record hot path."""

import bisect
import itertools
import string
from collections.abc import Iterable
from random import Random
from typing import Generic, TypeVar

T = TypeVar("T")


class Weighted(Generic[T]):
    """Draws items with probability proportional to their weights."""

    __slots__ = ("_cumulative", "_items", "_total")

    def __init__(self, items: Iterable[T], weights: Iterable[float]) -> None:
        self._items = tuple(items)
        self._cumulative = tuple(itertools.accumulate(weights))
        if len(self._items) != len(self._cumulative) or not self._items:
            raise ValueError("need one weight per item, and at least one item")
        self._total = self._cumulative[-1]

    def __call__(self, rng: Random) -> T:
        return self._items[bisect.bisect(self._cumulative, rng.random() * self._total)]


def fill_pattern(rng: Random, pattern: str) -> str:
    """Replace each '#' with a digit and each 'A' with an upper-case letter."""
    width = pattern.count("#")
    digits = iter(f"{rng.randrange(10**width):0{width}d}")
    letters = iter(rng.choices(string.ascii_uppercase, k=pattern.count("A")))
    return "".join(next(digits) if c == "#" else next(letters) if c == "A" else c for c in pattern)
