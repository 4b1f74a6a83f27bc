"""Determinism, options and their validation."""

import datetime as dt
import re

import pytest

from flywheel_contracts.traffic import (
    CHAT,
    ORDER_TOOLS,
    ROUTER,
    TrafficConfig,
    generate_lines,
    generate_records,
)
from flywheel_contracts.traffic.conversation import decapitalize

pytestmark = pytest.mark.unit


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = list(generate_lines(1500, 42))
    assert first == list(generate_lines(1500, 42))
    other = list(generate_lines(1500, 43))
    assert sum(a == b for a, b in zip(first, other, strict=True)) == 0


def test_a_shorter_run_is_a_prefix_of_a_longer_one() -> None:
    # Records are streamed: asking for more never changes the first ones.
    assert list(generate_lines(300, 7)) == list(generate_lines(900, 7))[:300]


def test_generation_uses_no_global_random_state() -> None:
    import random

    random.seed(1)
    first = list(generate_lines(200, 5))
    random.seed(2)
    assert list(generate_lines(200, 5)) == first


def test_timestamps_start_at_start_and_increase() -> None:
    start = dt.datetime(2024, 2, 28, 23, 59, tzinfo=dt.UTC)
    stamps = [
        r["timestamp"]
        for r in generate_records(2000, 1, TrafficConfig(start=start, timestamp_format="ms"))
    ]
    assert stamps == sorted(set(stamps))
    assert 0 < stamps[0] - start.timestamp() * 1000 < 60_000
    # ~200 ms apart on average: 2000 calls span minutes, not hours or milliseconds.
    assert 60_000 < stamps[-1] - stamps[0] < 3_600_000


def test_timestamp_forms_encode_the_same_instants() -> None:
    forms = {
        f: [r["timestamp"] for r in generate_records(30, 3, TrafficConfig(timestamp_format=f))]
        for f in ("s", "ms", "iso")
    }
    assert all(isinstance(s, int) and s < 10**10 for s in forms["s"])
    assert [ms // 1000 for ms in forms["ms"]] == forms["s"]
    parsed = [dt.datetime.fromisoformat(i) for i in forms["iso"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", i) for i in forms["iso"])
    assert [round(p.timestamp() * 1000) for p in parsed] == forms["ms"]
    mixed = [
        r["timestamp"] for r in generate_records(30, 3, TrafficConfig(timestamp_format="mixed"))
    ]
    assert mixed[:3] == [forms["s"][0], forms["ms"][1], forms["iso"][2]]


def test_dates_in_prompts_follow_the_clock() -> None:
    start = dt.datetime(2025, 3, 9, 23, 58, tzinfo=dt.UTC)
    config = TrafficConfig(workloads=(ROUTER,), start=start)
    days = {
        r["request"]["messages"][0]["content"].split("Today is ")[1][:10]
        for r in generate_records(1500, 2, config)
    }
    assert days == {"2025-03-09", "2025-03-10"}


def test_workload_and_client_options() -> None:
    config = TrafficConfig(
        workloads=(ORDER_TOOLS, CHAT),
        client_ids=("shop-eu", "shop-us"),
        model="m/big",
        metadata=False,
    )
    records = list(generate_records(400, 9, config))
    assert {r["workload_id"] for r in records} == {ORDER_TOOLS, CHAT}
    assert {r["client_id"] for r in records} == {"shop-eu", "shop-us"}
    assert {r["request"]["model"] for r in records} == {"m/big"}
    assert all("metadata" not in r for r in records)


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"workloads": ()}, "workloads"),
        ({"workloads": ("nope",)}, "unknown: \\['nope'\\]"),
        ({"client_ids": ()}, "client_ids"),
        ({"client_ids": ("",)}, "client_ids"),
        ({"start": dt.datetime(2025, 1, 1)}, "timezone-aware"),
        ({"timestamp_format": "seconds"}, "timestamp_format"),
    ],
)
def test_invalid_config_is_refused(options: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        TrafficConfig(**options)  # type: ignore[arg-type]


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="records must be >= 0"):
        generate_lines(-1, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where is it?", "where is it?"),
        ("I'd like", "I'd like"),
        ("I want", "I want"),
        ("ORD-1 late", "ORD-1 late"),
        ("DHL said", "DHL said"),
    ],
)
def test_decapitalize_keeps_pronouns_and_ids(text: str, expected: str) -> None:
    assert decapitalize(text) == expected
