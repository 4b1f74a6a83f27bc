"""Log timestamps: epoch seconds, epoch milliseconds or ISO 8601, normalised to one UTC form."""

import math
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

MILLISECONDS_FROM = 100_000_000_000
"""Epoch numbers at or above this are milliseconds. As seconds it would be the year 5138, as
milliseconds it is March 1973, so no realistic log time is ambiguous."""


class InvalidTimestamp(ValueError):
    pass


def parse_timestamp(value: int | float | str) -> datetime:
    """The instant `value` names, in UTC; InvalidTimestamp outside 1970-9999 or unreadable.

    An ISO 8601 time without an offset is taken as UTC.
    """
    if isinstance(value, str):
        return _from_iso(value)
    return _from_epoch(value)


def format_timestamp(instant: datetime) -> str:
    """Millisecond ISO 8601 with `Z`, the form stored (and sorted on) in Elasticsearch."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _from_epoch(value: int | float) -> datetime:
    if not math.isfinite(value) or value < 0:
        raise InvalidTimestamp(f"epoch value {value!r} is not a time from 1970 on")
    try:
        if value >= MILLISECONDS_FROM:
            # Integer milliseconds stay exact; a float is rounded to the microsecond.
            instant = EPOCH + timedelta(milliseconds=value)
        else:
            instant = EPOCH + timedelta(seconds=value)
    except OverflowError:
        raise InvalidTimestamp(f"epoch value {value!r} is after the year 9999") from None
    if instant > LATEST:
        raise InvalidTimestamp(f"epoch value {value!r} is after the year 9999")
    return instant


def _from_iso(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTimestamp(f"{text[:64]!r} is not an ISO 8601 date-time") from None
    try:
        instant = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:
        raise InvalidTimestamp(f"{text[:64]!r} is outside the years 1970-9999") from None
    if not EPOCH <= instant <= LATEST:
        raise InvalidTimestamp(f"{text[:64]!r} is outside the years 1970-9999")
    return instant
