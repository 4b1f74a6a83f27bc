"""The report of a finished run: one entry per candidate and evaluation type, and the candidate
a reviewer should look at first. Pure."""

from collections.abc import Sequence

from flywheel_contracts.events import Leaderboard, LeaderboardEntry, MetricScore, Recommendation
from flywheel_contracts.run_config import EvalType, RunConfig, WorkloadType
from flywheel_nim_manager.records import CandidateRecord, EndReason, WorkItem

PRIMARY_METRIC: dict[WorkloadType, str] = {
    WorkloadType.TOOL_CALLING: "function_name_and_args_accuracy",
    WorkloadType.GENERIC: "similarity",
}
"""The score a recommendation is based on; both are 1.0 when the candidate always gives the
production model's answer."""


def build_leaderboard(
    workload_type: WorkloadType, config: RunConfig, records: Sequence[CandidateRecord]
) -> Leaderboard:
    entries = tuple(
        _entry(record, eval_type)
        for record in sorted(records, key=lambda r: r.index)
        for eval_type in config.evaluation.eval_types
        if eval_type is not EvalType.CUSTOMIZED or record.candidate.customization_enabled
    )
    recommendation = recommend(
        entries, PRIMARY_METRIC[workload_type], config.evaluation.min_score_to_recommend
    )
    return Leaderboard(entries=entries, recommendation=recommendation)


def cost_per_1k_requests(tokens_per_request: float, price_per_1k_tokens: float) -> float:
    # 1,000 requests of t tokens are t * 1,000 tokens, i.e. t units of the per-1k-token price.
    return round(tokens_per_request * price_per_1k_tokens, 9)


def _entry(record: CandidateRecord, eval_type: EvalType) -> LeaderboardEntry:
    outcome = record.outcomes.get(WorkItem.evaluation(eval_type))
    done = outcome.evaluation if outcome is not None else None
    if done is not None and done.ok and done.usage is not None:
        usage = done.usage
        return LeaderboardEntry(
            candidate_model=record.model,
            eval_type=eval_type,
            scores=done.scores,
            latency_p50_ms=usage.latency_p50_ms,
            latency_p95_ms=usage.latency_p95_ms,
            tokens_per_request=usage.tokens_per_request,
            cost_per_1k_requests_usd=cost_per_1k_requests(
                usage.tokens_per_request, record.candidate.price_per_1k_tokens
            ),
            deployment_seconds=record.deployment_seconds,
        )
    return LeaderboardEntry(
        candidate_model=record.model,
        eval_type=eval_type,
        deployment_seconds=record.deployment_seconds if record.served else None,
        error=_why_no_scores(record, eval_type),
    )


def _why_no_scores(record: CandidateRecord, eval_type: EvalType) -> str:
    outcome = record.outcomes.get(WorkItem.evaluation(eval_type))
    if outcome is not None and outcome.error:
        return f"evaluation failed: {outcome.error}"
    ending = record.ending
    if not record.served:
        detail = ending.message if ending is not None else "never deployed"
        return f"deployment failed: {detail}"
    customization = record.outcomes.get(WorkItem.CUSTOMIZATION)
    if eval_type is EvalType.CUSTOMIZED and customization is not None and not customization.ok:
        return f"customization failed: {customization.error}"
    if ending is not None and ending.reason is not EndReason.FINISHED:
        return f"no result: {ending.message}"
    return "no result"


def _score(entry: LeaderboardEntry, metric: str) -> MetricScore | None:
    return next((score for score in entry.scores if score.name == metric), None)


def recommend(entries: Sequence[LeaderboardEntry], metric: str, threshold: float) -> Recommendation:
    """The cheapest entry whose `metric` reaches `threshold` (ties: the better score, then the
    configured order), or an honest "no candidate qualifies"."""
    scored = [(entry, score) for entry in entries if (score := _score(entry, metric)) is not None]
    qualifying = [(entry, score) for entry, score in scored if score.value >= threshold]
    if not qualifying:
        return Recommendation(
            candidate_model=None, eval_type=None, reason=_nobody(scored, metric, threshold)
        )
    entry, score = min(
        qualifying, key=lambda pair: (pair[0].cost_per_1k_requests_usd or 0.0, -pair[1].value)
    )
    cost = entry.cost_per_1k_requests_usd or 0.0
    return Recommendation(
        candidate_model=entry.candidate_model,
        eval_type=entry.eval_type,
        reason=(
            f"{metric} {score.value:.3f} (95% CI {score.ci_low:.3f}-{score.ci_high:.3f}) "
            f">= {threshold:.2f} at ${cost:.4f} per 1,000 requests, the cheapest of "
            f"{len(qualifying)} qualifying; flagged for human review before any promotion"
        ),
    )


def _nobody(
    scored: Sequence[tuple[LeaderboardEntry, MetricScore]], metric: str, threshold: float
) -> str:
    if not scored:
        return f"no candidate qualifies: no evaluation produced {metric}"
    entry, best = max(scored, key=lambda pair: pair[1].value)
    return (
        f"no candidate qualifies: the best {metric} is {best.value:.3f} "
        f"({entry.candidate_model}, {entry.eval_type.value}), below {threshold:.2f}"
    )
