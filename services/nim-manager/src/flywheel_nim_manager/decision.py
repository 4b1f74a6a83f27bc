"""The recommendation a reviewer is asked to approve. Pure.

A candidate (in one evaluation type) qualifies when the lower bound of the 95% interval of the
primary metric reaches the threshold: a mean over a few records that merely touches it is not
evidence enough. Its requests must also mostly have succeeded, and it must keep within the
optional cost and latency limits (ratios to the production model). Of those that qualify, the
one that saves most per month wins (an unknown saving ranks after every known one), then the
higher lower bound, then the configured order. Each other candidate gets the reason it fell
short, as data and in the one sentence that heads the report.

When nothing qualifies because the intervals are too wide, the decision also says how many
evaluation records the best mean would need for its interval to clear the threshold: the
smallest n whose lower bound at that mean reaches it (the bound rises with n at a fixed mean).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flywheel_contracts.events import (
    LeaderboardEntry,
    MetricScore,
    Recommendation,
    Shortfall,
    Verdict,
)
from flywheel_contracts.run_config import EvalType
from flywheel_contracts.stats import bounded_mean_interval, wilson

LowerBound = Callable[[float, int], float]
"""The 95% interval's lower bound of a metric at a mean over n records."""

SIMILARITY_FLOOR = 0.1
"""The lowest similarity score (a 1 on the judge's 1-10 scale)."""

_MOST_RECORDS = 1_000_000
_OTHERS_IN_SENTENCE = 3


def proportion_lower_bound(value: float, n: int) -> float:
    return wilson(round(value * n), n)[0]


def similarity_lower_bound(value: float, n: int) -> float:
    return bounded_mean_interval(value, n, SIMILARITY_FLOOR, 1.0)[0]


@dataclass(frozen=True)
class DecisionPolicy:
    threshold: float
    max_failed_ratio: float = 0.1
    max_cost_ratio: float | None = None
    max_latency_ratio: float | None = None
    """On the p95 latency."""


@dataclass(frozen=True)
class Subject:
    """What the sentence speaks of: the workload, the model in production, and the model id a
    customized candidate would be promoted as."""

    workload_id: str
    production_model: str | None
    customized: dict[str, str]
    """Candidate model -> its customized model id."""


def decide(
    entries: Sequence[LeaderboardEntry],
    metric: str,
    lower_bound: LowerBound,
    policy: DecisionPolicy,
    subject: Subject,
) -> Recommendation:
    verdicts = [_verdict(entry, metric, policy) for entry in entries]
    qualified = [(e, v) for e, v in zip(entries, verdicts, strict=True) if v.qualified]
    if not qualified:
        needed = _records_needed(entries, verdicts, metric, lower_bound, policy.threshold)
        return Recommendation(
            candidate_model=None,
            eval_type=None,
            reason=_nobody_sentence(entries, verdicts, metric, policy, subject, needed),
            metric=metric,
            threshold=policy.threshold,
            verdicts=tuple(verdicts),
            records_needed=needed[1] if needed else None,
        )
    # `min` keeps the first of equals: ties go to the configured order.
    best, _ = min(qualified, key=lambda pair: _rank(pair[0], metric))
    verdicts = [_outranked(v, best) if v.qualified and not _is(v, best) else v for v in verdicts]
    score = _score(best, metric)
    assert score is not None
    customized_id = subject.customized.get(best.candidate_model)
    promoted = customized_id if best.eval_type is EvalType.CUSTOMIZED else None
    return Recommendation(
        candidate_model=best.candidate_model,
        eval_type=best.eval_type,
        reason=_winner_sentence(best, score, entries, verdicts, policy, subject, promoted),
        model_id=promoted or best.candidate_model,
        base_model=best.candidate_model if promoted else None,
        metric=metric,
        threshold=policy.threshold,
        score=score,
        monthly_saving_usd=best.monthly_saving_usd,
        cost_ratio=best.cost_ratio,
        latency_p95_ratio=best.latency_p95_ratio,
        verdicts=tuple(verdicts),
    )


def _score(entry: LeaderboardEntry, metric: str) -> MetricScore | None:
    return next((score for score in entry.scores if score.name == metric), None)


def _interval(score: MetricScore) -> str:
    scored = score.n - score.failed
    return f"{score.value:.2f} (95% CI {score.ci_low:.2f}-{score.ci_high:.2f}, {scored} records)"


def _verdict(entry: LeaderboardEntry, metric: str, policy: DecisionPolicy) -> Verdict:
    def verdict(shortfall: Shortfall | None, detail: str) -> Verdict:
        return Verdict(
            candidate_model=entry.candidate_model,
            eval_type=entry.eval_type,
            qualified=shortfall is None,
            shortfall=shortfall,
            detail=detail,
        )

    score = _score(entry, metric)
    if entry.error is not None or score is None:
        return verdict(Shortfall.NOT_EVALUATED, entry.error or f"no {metric} score")
    threshold = policy.threshold
    if score.n and score.failed / score.n > policy.max_failed_ratio:
        return verdict(
            Shortfall.TOO_MANY_FAILURES,
            f"{score.failed} of {score.n} requests failed "
            f"(more than {policy.max_failed_ratio:.0%})",
        )
    if score.value < threshold:
        return verdict(Shortfall.BELOW_THRESHOLD, f"{_interval(score)} is below {threshold:.2f}")
    if score.ci_low < threshold:
        return verdict(
            Shortfall.INTERVAL_TOO_WIDE,
            f"{_interval(score)}: the mean clears {threshold:.2f}, the interval does not",
        )
    if policy.max_cost_ratio is not None and not (
        entry.cost_ratio is not None and entry.cost_ratio <= policy.max_cost_ratio
    ):
        cost = "unknown" if entry.cost_ratio is None else f"{entry.cost_ratio:.2f}x"
        return verdict(
            Shortfall.TOO_EXPENSIVE,
            f"costs {cost} production's, the limit is {policy.max_cost_ratio:.2f}x",
        )
    if policy.max_latency_ratio is not None and not (
        entry.latency_p95_ratio is not None and entry.latency_p95_ratio <= policy.max_latency_ratio
    ):
        latency = (
            "unknown" if entry.latency_p95_ratio is None else f"{entry.latency_p95_ratio:.2f}x"
        )
        return verdict(
            Shortfall.TOO_SLOW,
            f"p95 latency {latency} production's, the limit is {policy.max_latency_ratio:.2f}x",
        )
    return verdict(None, f"{_interval(score)} clears {threshold:.2f}")


def _rank(entry: LeaderboardEntry, metric: str) -> tuple[bool, float, float]:
    score = _score(entry, metric)
    assert score is not None
    saving = entry.monthly_saving_usd
    return (saving is None, -(saving or 0.0), -score.ci_low)


def _is(verdict: Verdict, entry: LeaderboardEntry) -> bool:
    return (verdict.candidate_model, verdict.eval_type) == (entry.candidate_model, entry.eval_type)


def _outranked(verdict: Verdict, best: LeaderboardEntry) -> Verdict:
    return verdict.model_copy(
        update={
            "qualified": True,
            "shortfall": Shortfall.OUTRANKED,
            "detail": f"{verdict.detail}, but {best.candidate_model} "
            f"({best.eval_type.value}) saves more",
        }
    )


def _records_needed(
    entries: Sequence[LeaderboardEntry],
    verdicts: Sequence[Verdict],
    metric: str,
    lower_bound: LowerBound,
    threshold: float,
) -> tuple[LeaderboardEntry, int] | None:
    """The best mean whose interval alone fell short, and the records it would need."""
    wide = [
        (entry, score)
        for entry, verdict in zip(entries, verdicts, strict=True)
        if verdict.shortfall is Shortfall.INTERVAL_TOO_WIDE
        and (score := _score(entry, metric)) is not None
    ]
    if not wide:
        return None
    entry, score = max(wide, key=lambda pair: pair[1].value)
    n = _smallest_n(score.value, max(score.n - score.failed, 1), lower_bound, threshold)
    return (entry, n) if n is not None else None


def _smallest_n(value: float, start: int, lower_bound: LowerBound, threshold: float) -> int | None:
    high = start
    while lower_bound(value, high) < threshold:
        if high >= _MOST_RECORDS:
            return None
        high *= 2
    low = max(start, high // 2)
    while low < high:
        middle = (low + high) // 2
        if lower_bound(value, middle) >= threshold:
            high = middle
        else:
            low = middle + 1
    return high


def _money(usd: float) -> str:
    return f"${abs(usd):,.2f}"


def _winner_sentence(
    best: LeaderboardEntry,
    score: MetricScore,
    entries: Sequence[LeaderboardEntry],
    verdicts: Sequence[Verdict],
    policy: DecisionPolicy,
    subject: Subject,
    promoted: str | None,
) -> str:
    production = subject.production_model or "the production model"
    target = (
        f"{promoted} (customized from {best.candidate_model})"
        if promoted
        else f"{best.candidate_model} ({best.eval_type.value})"
    )
    parts = [
        f"Switch {subject.workload_id} from {production} to {target}: "
        f"{score.name} {_interval(score)} clears {policy.threshold:.2f}"
    ]
    saving, ratio = best.monthly_saving_usd, best.cost_ratio
    if saving is not None and ratio is not None:
        change = "saving" if saving >= 0 else "costing"
        parts.append(f"{change} {_money(saving)} a month ({ratio:.0%} of the cost)")
    else:
        parts.append("saving unknown (a price or the logged volume is missing)")
    if best.latency_p95_ratio is not None:
        parts.append(f"at {best.latency_p95_ratio:.2f}x the p95 latency")
    sentence = ", ".join(parts)
    others = _others(entries, verdicts, score.name, best)
    return f"{sentence}; {others}." if others else f"{sentence}."


# The order in which the sentence tells why others fell short: the nearest misses first.
_TOLD_FIRST = (
    Shortfall.OUTRANKED,
    Shortfall.INTERVAL_TOO_WIDE,
    Shortfall.TOO_EXPENSIVE,
    Shortfall.TOO_SLOW,
    Shortfall.TOO_MANY_FAILURES,
    Shortfall.BELOW_THRESHOLD,
    Shortfall.NOT_EVALUATED,
)


def _others(
    entries: Sequence[LeaderboardEntry],
    verdicts: Sequence[Verdict],
    metric: str,
    best: LeaderboardEntry | None,
) -> str:
    """Why the others fell short: each candidate once, by its nearest miss (the kind of miss
    told first, then, among misses of one kind, its evaluation that scored highest: a model
    whose customized evaluation came near is not told by its base's 0). `verdicts[i]` is the
    verdict on `entries[i]`."""

    def nearness(pair: tuple[LeaderboardEntry, Verdict]) -> tuple[int, float]:
        entry, verdict = pair
        score = _score(entry, metric)
        kind = _TOLD_FIRST.index(verdict.shortfall) if verdict.shortfall else -1
        return kind, -(score.value if score is not None else -1.0)

    nearest: dict[str, Verdict] = {}
    others = [
        pair
        for pair in zip(entries, verdicts, strict=True)
        if best is None or pair[1].candidate_model != best.candidate_model
    ]
    for _, verdict in sorted(others, key=nearness):
        nearest.setdefault(verdict.candidate_model, verdict)
    shown = [f"{v.candidate_model} ({v.eval_type.value}): {v.detail}" for v in nearest.values()]
    extra = len(shown) - _OTHERS_IN_SENTENCE
    text = "; ".join(shown[:_OTHERS_IN_SENTENCE])
    return f"{text}; and {extra} more" if extra > 0 else text


def _nobody_sentence(
    entries: Sequence[LeaderboardEntry],
    verdicts: Sequence[Verdict],
    metric: str,
    policy: DecisionPolicy,
    subject: Subject,
    needed: tuple[LeaderboardEntry, int] | None,
) -> str:
    production = subject.production_model or "the production model"
    head = f"No candidate can replace {production} on {subject.workload_id} yet"
    if not entries:
        return f"{head}: nothing was evaluated."
    if needed is not None:
        entry, n = needed
        score = _score(entry, metric)
        assert score is not None
        return (
            f"{head}: the best, {entry.candidate_model} ({entry.eval_type.value}) at "
            f"{score.value:.2f}, would need about {n} evaluation records for its 95% interval "
            f"to clear {policy.threshold:.2f} (it had {score.n - score.failed}); "
            f"{_others(entries, verdicts, metric, None)}."
        )
    return f"{head}: {_others(entries, verdicts, metric, None)}."


def monthly_usd(cost_per_1k_requests: float, requests_per_day: float) -> float:
    """A 30-day month of requests at the logged volume."""
    return cost_per_1k_requests * requests_per_day * 30 / 1000


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is unknown or the reference is 0."""
    if value is None or reference is None or reference <= 0 or math.isnan(reference):
        return None
    return value / reference
