"""What the events say about one run after a fault: each distinct event once, however often
Kafka redelivered it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID

from flywheel_nim_manager.testing.process import EventTap
from tests.support.runs import unique


def distinct(
    tap: EventTap, event_type: str, run_id: UUID, key: Callable[[Any], object]
) -> Counter[object]:
    """Distinct events (by id) of the run per `key(payload)`: a redelivered copy keeps its id
    and counts once, a second event about the same thing counts twice."""
    return Counter(key(e.payload) for e in unique(tap.of(event_type, run_id)))


def copies(tap: EventTap, event_type: str, run_id: UUID) -> int:
    """Messages of `event_type` for the run, redelivered copies included."""
    return len(tap.of(event_type, run_id))
