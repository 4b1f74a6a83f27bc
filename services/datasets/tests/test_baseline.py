"""The production baseline from the records themselves: models, usage, latency and volume."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flywheel_contracts.events.baseline import ProductionBaseline, ProductionModel
from flywheel_datasets.baseline import Tally, Volume, production_baseline
from flywheel_datasets.records import Record
from services.datasets.tests.factories import record

pytestmark = pytest.mark.unit

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def _logged(
    *,
    response_model: str | None = None,
    request_model: str | None = "big",
    usage: Any = None,
    latency_ms: Any = None,
    at: Any = None,
) -> Record:
    logged = record()
    logged["request"].pop("model", None)
    if request_model is not None:
        logged["request"]["model"] = request_model
    if response_model is not None:
        logged["response"]["model"] = response_model
    if usage is not None:
        logged["response"]["usage"] = usage
    if latency_ms is not None:
        logged["metadata"] = {"latency_ms": latency_ms}
    if at is not None:
        logged["timestamp"] = at
    return logged


def _baseline(selected: list[Record], read: list[Record] | None = None) -> ProductionBaseline:
    tally, volume = Tally(), Volume()
    for logged in selected:
        tally.add(logged)
    for logged in selected if read is None else read:
        volume.add(logged)
    return production_baseline(tally, volume)


def _usage(prompt: Any, completion: Any) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion}


def test_production_models_are_counted_most_records_first() -> None:
    records = [
        _logged(response_model="small", request_model="big"),  # the response names the model
        _logged(response_model="small", request_model=None),
        _logged(response_model="small"),
        _logged(request_model="big"),  # no response.model: the request's
        _logged(response_model="big"),
        _logged(request_model=None),  # no model anywhere: described, not attributed
    ]
    baseline = _baseline(records)
    assert baseline.models == (
        ProductionModel(model="small", records=3),
        ProductionModel(model="big", records=2),
    )
    assert baseline.model == "small"
    assert baseline.records == 6


def test_models_serving_as_many_records_are_ordered_by_name() -> None:
    records = [_logged(response_model=name) for name in ("zeta", "alpha", "mid", "zeta", "alpha")]
    baseline = _baseline(records)
    assert [(m.model, m.records) for m in baseline.models] == [
        ("alpha", 2),
        ("zeta", 2),
        ("mid", 1),
    ]


def test_token_means_cover_only_the_records_with_usage() -> None:
    records = [
        _logged(usage=_usage(100, 10)),
        _logged(usage=_usage(300, 30)),
        _logged(),  # no usage
        _logged(usage=_usage(1000, None)),  # no completion count
        _logged(usage=_usage(1000.5, 10)),  # not an integer count
        _logged(usage=_usage(True, 10)),  # a bool is no count
        _logged(usage="n/a"),
    ]
    baseline = _baseline(records)
    assert (baseline.records, baseline.records_with_usage) == (7, 2)
    assert baseline.prompt_tokens_per_request == pytest.approx(200.0)
    assert baseline.completion_tokens_per_request == pytest.approx(20.0)
    assert baseline.tokens_per_request == pytest.approx(220.0)


def test_without_any_usage_the_token_means_are_none() -> None:
    baseline = _baseline([_logged(), _logged(usage={"total_tokens": 5})])
    assert baseline.records_with_usage == 0
    assert baseline.prompt_tokens_per_request is None
    assert baseline.completion_tokens_per_request is None


def test_latency_percentiles_interpolate_over_the_records_that_have_one() -> None:
    records = [_logged(latency_ms=float(ms)) for ms in range(100, 0, -1)]  # 100 .. 1
    records += [_logged(), _logged(latency_ms="fast"), _logged(latency_ms=-5)]
    baseline = _baseline(records)
    assert baseline.records_with_latency == 100
    assert baseline.latency_p50_ms == pytest.approx(50.5)
    assert baseline.latency_p95_ms == pytest.approx(95.05)


def test_without_any_latency_the_percentiles_are_none() -> None:
    baseline = _baseline([_logged(), _logged(latency_ms=None)])
    assert baseline.records_with_latency == 0
    assert baseline.latency_p50_ms is None
    assert baseline.latency_p95_ms is None


def _iso(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_window_shorter_than_a_day_counts_as_one_day() -> None:
    read = [_logged(at=_iso(START + timedelta(minutes=10 * i))) for i in range(12)]  # 110 min
    assert _baseline(read[:3], read).requests_per_day == pytest.approx(12.0)


def test_volume_over_several_days_is_records_per_day_of_their_span() -> None:
    # Newest first, as read; 31 records from day 0 to day 3 (a span of three days).
    read = [_logged(at=_iso(START + timedelta(hours=3 * 24 - 2.4 * i))) for i in range(31)]
    assert _baseline(read[:5], read).requests_per_day == pytest.approx(31 / 3)
    # Read volume, not the selection's: the selected records alone would span far less.
    assert _baseline(read[:5]).requests_per_day == pytest.approx(5.0)


def test_epoch_timestamps_are_read_too_and_unreadable_ones_skipped() -> None:
    seconds = START.timestamp()
    read = [
        _logged(at=int(seconds)),
        _logged(at=int(seconds * 1000) + 2 * 86_400_000),  # milliseconds, two days later
        _logged(at="2025-01-07T09:00:00"),  # ISO without an offset: UTC
        _logged(at="yesterday"),
    ]
    assert _baseline(read[:1], read).requests_per_day == pytest.approx(4 / 2)


def test_without_a_readable_timestamp_the_volume_is_unknown() -> None:
    read = [_logged(at="soon"), _logged(at=None)]
    read[1].pop("timestamp")
    assert _baseline(read).requests_per_day is None
