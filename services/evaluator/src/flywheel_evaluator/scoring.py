"""The metrics, from per-record scores to the scores and usage an eval.done carries.

Metric definitions (README.md has the prose):
- function_name_accuracy: 1 when the candidate called the same functions as the reference,
  each as many times, order free; else 0.
- function_name_and_args_accuracy: 1 when, in addition, each call's arguments equal the
  reference's as parsed JSON (toolcalls.py); else 0.
- function_name_accuracy_lenient, function_name_and_args_accuracy_lenient: the same, over the
  calls of `tool_calls` or, when there are none, the calls written as JSON in the content
  (dialects.py). The two above are strict: only `tool_calls` count.
- tool_calling_correctness: the judge's 0/1 verdict on the calls (0 without asking when the
  candidate made no call).
- similarity: the judge's 1-10 rating divided by 10 (so 0.1-1.0).

Usage: latency percentiles of the answered requests, mean tokens, completion tokens per second
(the answered records' completion tokens over the seconds their requests took, both summed),
and the 429s waited out.

Every metric's value is the mean over the records where it could be computed; records whose
request or scoring failed are excluded and reported in `failed`. Proportions get a Wilson
interval, similarity a t interval.
"""

from collections.abc import Sequence

from flywheel_contracts.events import MetricScore, UsageStats
from flywheel_contracts.run_config import WorkloadType
from flywheel_contracts.stats import mean_interval, percentile, wilson
from flywheel_evaluator.models import RecordResult

FUNCTION_NAME = "function_name_accuracy"
FUNCTION_NAME_AND_ARGS = "function_name_and_args_accuracy"
CORRECTNESS = "tool_calling_correctness"
FUNCTION_NAME_LENIENT = "function_name_accuracy_lenient"
FUNCTION_NAME_AND_ARGS_LENIENT = "function_name_and_args_accuracy_lenient"
SIMILARITY = "similarity"

PROPORTIONS = frozenset(
    {
        FUNCTION_NAME,
        FUNCTION_NAME_AND_ARGS,
        CORRECTNESS,
        FUNCTION_NAME_LENIENT,
        FUNCTION_NAME_AND_ARGS_LENIENT,
    }
)
METRICS: dict[WorkloadType, tuple[str, ...]] = {
    WorkloadType.TOOL_CALLING: (
        FUNCTION_NAME,
        FUNCTION_NAME_AND_ARGS,
        CORRECTNESS,
        FUNCTION_NAME_LENIENT,
        FUNCTION_NAME_AND_ARGS_LENIENT,
    ),
    WorkloadType.GENERIC: (SIMILARITY,),
}
SIMILARITY_SCALE = 10.0


def metric_score(name: str, values: Sequence[float], n: int) -> MetricScore:
    """`values` are the scores of the records that were scored, out of `n` evaluated."""
    if not values:
        raise ValueError(f"{name}: no record was scored")
    mean = sum(values) / len(values)
    if name in PROPORTIONS:
        low, high = wilson(round(sum(values)), len(values))
    else:
        low, high = mean_interval(values)
    return MetricScore(name=name, value=mean, n=n, failed=n - len(values), ci_low=low, ci_high=high)


def aggregate_scores(
    workload: WorkloadType, results: Sequence[RecordResult]
) -> tuple[MetricScore, ...]:
    """One score per metric of the workload that has at least one scored record."""
    scores = []
    for name in METRICS[workload]:
        values = [v for r in results if (v := r.scores.get(name)) is not None]
        if values:
            scores.append(metric_score(name, values, len(results)))
    return tuple(scores)


def usage_stats(results: Sequence[RecordResult]) -> UsageStats:
    """Latency and tokens of the requests the candidate answered, and the 429s of all."""
    answered = [r for r in results if r.ok]
    latencies = [r.latency_ms for r in answered if r.latency_ms is not None]
    prompt = [r.prompt_tokens for r in answered if r.prompt_tokens is not None]
    completion = [r.completion_tokens for r in answered if r.completion_tokens is not None]
    return UsageStats(
        requests=len(answered),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        prompt_tokens_per_request=sum(prompt) / len(prompt) if prompt else 0.0,
        completion_tokens_per_request=sum(completion) / len(completion) if completion else 0.0,
        completion_tokens_per_second=tokens_per_second(answered),
        rate_limited=sum(r.rate_limited for r in results),
    )


def tokens_per_second(results: Sequence[RecordResult]) -> float | None:
    """Completion tokens over the seconds their requests took, summed over the records that
    report both (a ratio of sums: a long answer weighs as much as it took); None without any."""
    timed = [
        (r.completion_tokens, r.latency_ms)
        for r in results
        if r.completion_tokens is not None and r.latency_ms is not None
    ]
    seconds = sum(latency for _, latency in timed) / 1000
    if not timed or seconds <= 0:
        return None
    return sum(tokens for tokens, _ in timed) / seconds
