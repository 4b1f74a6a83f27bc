"""Confidence intervals and percentiles, without a statistics dependency.

- proportions (0/1 scores): the Wilson score interval, which stays inside [0, 1] and behaves at
  p = 0 or 1 and for small n, where the normal approximation does not;
- means of bounded scores: Student's t interval, clipped to [0, 1];
- means known only by their value and count (NMP results): t interval with the largest variance
  a score bounded in [low, high] can have at that mean (Bhatia-Davis), so never too narrow.
"""

import math
from collections.abc import Sequence
from statistics import NormalDist

CONFIDENCE = 0.95
_Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(df: int) -> float:
    """The two-sided 95% t quantile; Cornish-Fisher beyond the table (error < 1e-3)."""
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if df <= len(_T95):
        return _T95[df - 1]
    z = _Z
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def _ordered(low: float, value: float, high: float) -> tuple[float, float]:
    """[low, high] clipped to [0, 1] and widened to contain `value` despite rounding."""
    return max(0.0, min(low, value)), min(1.0, max(high, value))


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = _Z * _Z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = _Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return _ordered(centre - half, p, centre + half)


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """95% t interval of the mean of scores in [0, 1]; [0, 1] with fewer than two values."""
    n = len(values)
    if n == 0:
        return 0.0, 1.0
    mean = sum(values) / n
    if n == 1:
        return _ordered(0.0, mean, 1.0)
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile(n - 1) * math.sqrt(variance / n)
    return _ordered(mean - half, mean, mean + half)


def bounded_mean_interval(mean: float, n: int, low: float, high: float) -> tuple[float, float]:
    """95% t interval for a mean of n scores in [low, high] when only the mean is known."""
    if n < 2:
        return _ordered(0.0, mean, 1.0)
    worst_variance = max(0.0, (mean - low) * (high - mean)) * n / (n - 1)
    half = t_quantile(n - 1) * math.sqrt(worst_variance / n)
    return _ordered(mean - half, mean, mean + half)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between order statistics."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
