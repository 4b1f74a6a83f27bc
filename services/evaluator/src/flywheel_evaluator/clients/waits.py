"""Waiting out "not now": how long one request waits before it is sent again, and when it gives
up. Two answers mean "not now", not "not this", and neither uses up one of the request's
attempts (which are for failures):

- a 429. It is counted, and the request is sent again after the `Retry-After` header's delay
  (seconds, or an HTTP date), at most `chat.retry_after_max_s` per wait (a server is often ready
  sooner than it says, and one more 429 costs little); without a usable header, after the same
  exponential backoff as a transient failure. Answered 429 for longer than
  `chat.rate_limited_max_s`, or told to wait past it, the request gives up: the evaluation ends
  with `rate_limited` rather than record after record failing the same way.
- no connection at all (refused, unresolvable, not accepted in time): the endpoint is down, a
  platform outage to wait out like any other, with the backoff, for up to
  `chat.unreachable_max_s`. Past that the evaluation ends, rather than failing every record
  against a server that is not there.

Each is counted from its first occurrence, on the clock and in waits alike.
"""

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from flywheel_contracts.runtime.clock import Clock as WallClock
from flywheel_contracts.runtime.clock import utc_now
from flywheel_evaluator.config import ChatSettings

Clock = Callable[[], float]

MIN_WAIT_S = 0.1
"""The shortest wait: a server answering 429 with `Retry-After: 0` (or backoff set to 0) still
runs into the total bound instead of being asked again forever at full speed."""


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """The delay a `Retry-After` header asks for (0 for a date in the past); None when there is
    no header or it is neither a number of seconds nor an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; `-0000` parses as naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class WaitBudget:
    """One request's "not now" answers of one kind: their count, and the next wait or the
    verdict to give up once `max_s` (the setting named `setting`) would be passed."""

    def __init__(
        self,
        settings: ChatSettings,
        *,
        max_s: float,
        setting: str,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
    ) -> None:
        self._settings = settings
        self._max_s = max_s
        self._setting = setting
        self._clock = clock
        self._wall_clock = wall_clock
        self.count = 0
        self.waited_s = 0.0
        self.asked_s = 0.0
        """The last wait asked for (by the server, or the backoff)."""
        self._first: float | None = None

    @property
    def spent_s(self) -> float:
        """Time since the first 429: the waits, or the clock when the 429s themselves were slow
        (a fake sleep in tests does not move the clock, so the waits count too)."""
        on_clock = 0.0 if self._first is None else self._clock() - self._first
        return max(self.waited_s, on_clock)

    @classmethod
    def rate_limits(cls, settings: ChatSettings) -> "WaitBudget":
        return cls(settings, max_s=settings.rate_limited_max_s, setting="chat.rate_limited_max_s")

    @classmethod
    def outages(cls, settings: ChatSettings) -> "WaitBudget":
        return cls(settings, max_s=settings.unreachable_max_s, setting="chat.unreachable_max_s")

    def next_wait(self, retry_after: str | None = None) -> float | None:
        """Count one; the seconds to wait before sending again, or None to give up."""
        self.count += 1
        if self._first is None:
            self._first = self._clock()
        asked = retry_after_seconds(retry_after, self._wall_clock())
        if asked is None:
            backoff = self._settings.backoff_s * 2 ** (self.count - 1)
            asked = min(backoff, self._settings.backoff_max_s)
        self.asked_s = asked = max(asked, MIN_WAIT_S)
        if self.spent_s + asked > self._max_s:
            return None
        wait = min(asked, self._settings.retry_after_max_s)
        self.waited_s += wait
        return wait

    def verdict(self, what: str) -> str:
        """Why the request gave up; `what` happened `count` times (e.g. "answers 429")."""
        return (
            f"{self.count} {what} to one request over {self.spent_s:.0f} s, and waiting "
            f"{self.asked_s:.0f} s more would pass the {self._max_s:g} s bound ({self._setting})"
        )
