import pytest

from flywheel_contracts.stats import (
    bounded_mean_interval,
    mean_interval,
    percentile,
    t_quantile,
    wilson,
)

pytestmark = pytest.mark.unit


def test_wilson_known_values() -> None:
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4)
    assert high == 1.0
    assert wilson(0, 0) == (0.0, 1.0)


def test_t_quantile_table_and_expansion() -> None:
    assert t_quantile(1) == pytest.approx(12.706)
    assert t_quantile(30) == pytest.approx(2.042)
    assert t_quantile(40) == pytest.approx(2.021, abs=1e-3)
    assert t_quantile(120) == pytest.approx(1.980, abs=1e-3)
    with pytest.raises(ValueError, match="degrees"):
        t_quantile(0)


def test_mean_interval() -> None:
    assert mean_interval([0.5] * 5) == (0.5, 0.5)
    low, high = mean_interval([0.2, 0.4, 0.6, 0.8])
    # mean 0.5, sd 0.2582, t(3) = 3.182 -> half width 0.4108
    assert low == pytest.approx(0.0892, abs=1e-4)
    assert high == pytest.approx(0.9108, abs=1e-4)
    assert mean_interval([0.9]) == (0.0, 1.0)
    assert mean_interval([1.0, 1.0, 0.1])[1] == 1.0  # clipped to the scale


def test_bounded_mean_interval_is_never_narrower_than_the_data_allows() -> None:
    values = [0.1, 1.0] * 10
    mean = sum(values) / len(values)
    exact = mean_interval(values)
    bound = bounded_mean_interval(mean, len(values), 0.1, 1.0)
    assert bound[0] <= exact[0] + 1e-9
    assert bound[1] >= exact[1] - 1e-9


def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 95) == 7.0
