"""Usage of an evaluation: completion tokens per second are a ratio of sums over the records
reporting both tokens and latency; 429s waited out are summed over every record."""

from __future__ import annotations

import pytest

from flywheel_evaluator.models import RecordResult
from flywheel_evaluator.scoring import usage_stats

pytestmark = pytest.mark.unit


def answered(
    index: int, completion_tokens: int | None, latency_ms: float | None, rate_limited: int = 0
) -> RecordResult:
    return RecordResult(
        index=index,
        ok=True,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        rate_limited=rate_limited,
    )


def test_tokens_per_second_is_the_sum_of_tokens_over_the_sum_of_their_seconds() -> None:
    results = [
        answered(0, 10, 500.0),
        answered(1, 30, 1500.0, rate_limited=2),
        answered(2, None, 9000.0),  # no tokens reported: neither counts
        answered(3, 99, None),  # no latency: neither counts
        RecordResult(index=4, ok=False, rate_limited=3, error="gave up"),
    ]
    usage = usage_stats(results)
    # (10 + 30) / (0.5 + 1.5), not the mean of 20 and 20 by luck: see the next case.
    assert usage.completion_tokens_per_second == pytest.approx(20.0)
    assert usage.rate_limited == 5
    assert usage.requests == 4


def test_a_long_answer_weighs_as_much_as_it_took() -> None:
    usage = usage_stats([answered(0, 100, 1000.0), answered(1, 10, 9000.0)])
    assert usage.completion_tokens_per_second == pytest.approx(110 / 10)  # mean of rates: 50.5


def test_tokens_per_second_is_none_without_a_record_reporting_both() -> None:
    usage = usage_stats([answered(0, None, 100.0), answered(1, 5, None)])
    assert usage.completion_tokens_per_second is None
    assert usage_stats([]).completion_tokens_per_second is None
    assert usage_stats([]).rate_limited == 0
