"""When a fault strikes: a seeded choice among the moments of a run where the target has work in
hand (right after an event of the run was seen), plus a random delay, and how long the target
stays down before it is brought back."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from flywheel_nim_manager.testing.process import EventTap

REQUESTED = "run.requested"
"""Not tapped: the moment the test published the run's request."""
MAX_DELAY_S = 2.0
MAX_DOWN_S = 2.0


@dataclass(frozen=True)
class Trigger:
    after: str
    delay_s: float
    down_s: float

    def __str__(self) -> str:
        return f"{self.delay_s:.2f}s after {self.after}, down for {self.down_s:.2f}s"


@dataclass(frozen=True)
class Window:
    """When a target has work in hand: within `max_delay_s` after one of `events` of the run."""

    events: tuple[str, ...]
    max_delay_s: float = MAX_DELAY_S


def choose(rng: random.Random, window: Window) -> Trigger:
    return Trigger(
        after=rng.choice(window.events),
        delay_s=round(rng.uniform(0, window.max_delay_s), 2),
        down_s=round(rng.uniform(0, MAX_DOWN_S), 2),
    )


async def reach(trigger: Trigger, tap: EventTap, run_id: UUID, timeout_s: float) -> None:
    if trigger.after != REQUESTED:
        await tap.wait_for(trigger.after, run_id, timeout_s=timeout_s)
    await asyncio.sleep(trigger.delay_s)


@dataclass(frozen=True)
class Moment:
    """Where the run stood when the fault struck."""

    since_request_s: float
    seen: Counter[str]
    ended: bool

    @classmethod
    def now(
        cls, tap: EventTap, run_id: UUID, requested_at: float, event_types: Sequence[str]
    ) -> Moment:
        seen = Counter({t: len({e.event_id for e in tap.of(t, run_id)}) for t in event_types})
        ended = bool(seen["run.completed"] or seen["run.failed"])
        return cls(time.monotonic() - requested_at, +seen, ended)

    def __str__(self) -> str:
        events = ", ".join(f"{t} x{n}" for t, n in self.seen.items()) or "no event yet"
        where = "after the run ended" if self.ended else "mid-run"
        return f"{self.since_request_s:.1f}s after run.requested ({where}; seen: {events})"
