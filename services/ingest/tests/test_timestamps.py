"""Timestamps: the three accepted forms, their bounds, and the one stored form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flywheel_ingest.timestamps import (
    MILLISECONDS_FROM,
    InvalidTimestamp,
    format_timestamp,
    parse_timestamp,
)

pytestmark = pytest.mark.unit

INSTANT = datetime(2025, 1, 6, 9, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        1736154000.25,
        1736154000250,
        "2025-01-06T09:00:00.250Z",
        "2025-01-06T09:00:00.250+00:00",
        "2025-01-06T10:00:00.250+01:00",
        "2025-01-06T04:00:00.250-05:00",
        "2025-01-06T09:00:00.250",  # no offset: UTC
        "2025-01-06 09:00:00.250Z",
    ],
)
def test_every_form_names_the_same_utc_instant(value: int | float | str) -> None:
    assert parse_timestamp(value) == INSTANT
    assert format_timestamp(parse_timestamp(value)) == "2025-01-06T09:00:00.250Z"


def test_integer_seconds_and_a_date_alone() -> None:
    assert format_timestamp(parse_timestamp(1736154000)) == "2025-01-06T09:00:00.000Z"
    assert format_timestamp(parse_timestamp("2025-01-06")) == "2025-01-06T00:00:00.000Z"


def test_seconds_and_milliseconds_are_told_apart_by_magnitude() -> None:
    just_below = parse_timestamp(MILLISECONDS_FROM - 1)  # seconds: far in the future
    at = parse_timestamp(MILLISECONDS_FROM)  # milliseconds: 1973
    assert just_below.year == 5138
    assert at.year == 1973


@pytest.mark.parametrize(
    "value",
    [
        -1,
        -0.5,
        float("inf"),
        float("nan"),
        10**20,
        253402300800 * 1000,  # 10000-01-01 in milliseconds
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
        "",
        "yesterday",
        "2025-13-01T00:00:00Z",
        "2025-02-30",
        "13/45/2025 25:61",
    ],
)
def test_out_of_range_or_unreadable(value: int | float | str) -> None:
    with pytest.raises(InvalidTimestamp):
        parse_timestamp(value)


def test_the_bounds_themselves_are_accepted() -> None:
    assert parse_timestamp(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert format_timestamp(parse_timestamp("9999-12-31T23:59:59.999999Z")) == (
        "9999-12-31T23:59:59.999Z"
    )
