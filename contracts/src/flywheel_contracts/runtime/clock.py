"""The one wall clock every service reads: UTC, timezone-aware. Code takes a `Clock` so tests
can drive time (`runtime.testing.ManualClock`); elapsed time is `time.monotonic`, not this."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
