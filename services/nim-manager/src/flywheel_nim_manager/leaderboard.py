"""The report of a finished run: one entry per candidate and evaluation type, each against
the production model that served the logged traffic (the reference row), and the decision a
reviewer is asked to approve (decision.py). Pure."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from flywheel_contracts.events import (
    Leaderboard,
    LeaderboardEntry,
    ProductionBaseline,
    ProductionRow,
    UsageStats,
)
from flywheel_contracts.run_config import CandidateConfig, EvalType, RunConfig, WorkloadType
from flywheel_nim_manager.decision import (
    DecisionPolicy,
    LowerBound,
    Subject,
    decide,
    monthly_usd,
    proportion_lower_bound,
    ratio,
    similarity_lower_bound,
)
from flywheel_nim_manager.records import CandidateRecord, EndReason, WorkItem

PRIMARY_METRIC: dict[WorkloadType, str] = {
    WorkloadType.TOOL_CALLING: "function_name_and_args_accuracy",
    WorkloadType.GENERIC: "similarity",
}
"""The score a recommendation is based on; both are 1.0 when the candidate always gives the
production model's answer."""

LOWER_BOUND: dict[WorkloadType, LowerBound] = {
    WorkloadType.TOOL_CALLING: proportion_lower_bound,
    WorkloadType.GENERIC: similarity_lower_bound,
}


@dataclass(frozen=True)
class Pricing:
    """USD per 1,000 tokens, by model. A candidate's own price (when above 0) wins; a model
    in neither place has an unknown price, shown as unknown and never taken as 0."""

    per_1k_tokens: Mapping[str, float] = field(default_factory=dict)

    def of(self, model: str | None, candidate: CandidateConfig | None = None) -> float | None:
        if candidate is not None and candidate.price_per_1k_tokens > 0:
            return candidate.price_per_1k_tokens
        return self.per_1k_tokens.get(model) if model is not None else None


@dataclass(frozen=True)
class Judgement:
    """How a run is priced and decided: the price table and the decision's limits (the
    threshold comes from each run's config)."""

    pricing: Pricing = Pricing()
    max_failed_ratio: float = 0.1
    max_cost_ratio: float | None = None
    max_latency_ratio: float | None = None

    def policy(self, config: RunConfig) -> DecisionPolicy:
        return DecisionPolicy(
            threshold=config.evaluation.min_score_to_recommend,
            max_failed_ratio=self.max_failed_ratio,
            max_cost_ratio=self.max_cost_ratio,
            max_latency_ratio=self.max_latency_ratio,
        )


DEFAULT_JUDGEMENT = Judgement()


def build_leaderboard(
    workload_type: WorkloadType,
    config: RunConfig,
    records: Sequence[CandidateRecord],
    baseline: ProductionBaseline | None = None,
    judgement: Judgement = DEFAULT_JUDGEMENT,
) -> Leaderboard:
    production = _production_row(baseline, judgement.pricing)
    entries = tuple(
        _against(_entry(record, eval_type, judgement.pricing), production)
        for record in sorted(records, key=lambda r: r.index)
        for eval_type in config.evaluation.eval_types
        if eval_type is not EvalType.CUSTOMIZED or record.candidate.customization_enabled
    )
    subject = Subject(
        workload_id=config.workload_id,
        production_model=baseline.model if baseline else None,
        customized={
            record.model: customized
            for record in records
            if (outcome := record.outcomes.get(WorkItem.CUSTOMIZATION)) is not None
            and (customized := outcome.customized_model) is not None
        },
    )
    recommendation = decide(
        entries,
        PRIMARY_METRIC[workload_type],
        LOWER_BOUND[workload_type],
        judgement.policy(config),
        subject,
    )
    return Leaderboard(entries=entries, recommendation=recommendation, production=production)


def _production_row(baseline: ProductionBaseline | None, pricing: Pricing) -> ProductionRow | None:
    if baseline is None:
        return None
    price = pricing.of(baseline.model)
    tokens = baseline.tokens_per_request
    cost = cost_per_1k_requests(tokens, price) if tokens is not None and price is not None else None
    volume = baseline.requests_per_day
    return ProductionRow(
        baseline=baseline,
        price_per_1k_tokens=price,
        cost_per_1k_requests_usd=cost,
        monthly_cost_usd=monthly_usd(cost, volume) if cost is not None and volume else None,
    )


def _against(entry: LeaderboardEntry, production: ProductionRow | None) -> LeaderboardEntry:
    """The entry with its ratios to production and its monthly saving at the logged volume."""
    if production is None or entry.error is not None:
        return entry
    baseline = production.baseline
    cost, reference = entry.cost_per_1k_requests_usd, production.cost_per_1k_requests_usd
    volume = baseline.requests_per_day
    saving = (
        monthly_usd(reference - cost, volume)
        if cost is not None and reference is not None and volume is not None
        else None
    )
    return entry.model_copy(
        update={
            "cost_ratio": ratio(cost, reference),
            "monthly_saving_usd": round(saving, 2) if saving is not None else None,
            "latency_p50_ratio": ratio(entry.latency_p50_ms, baseline.latency_p50_ms),
            "latency_p95_ratio": ratio(entry.latency_p95_ms, baseline.latency_p95_ms),
        }
    )


def cost_per_1k_requests(tokens_per_request: float, price_per_1k_tokens: float) -> float:
    # 1,000 requests of t tokens are t * 1,000 tokens, i.e. t units of the per-1k-token price.
    return round(tokens_per_request * price_per_1k_tokens, 9)


def candidate_cost_per_1k_requests(
    usage: UsageStats, candidate: CandidateConfig, price: float | None
) -> float | None:
    """USD per 1,000 requests: at the candidate's separate input and output prices when it has
    either (hosted providers price completion tokens several times dearer), else at `price` per
    token of either kind; None when no price is known."""
    split_in, split_out = candidate.price_per_1k_input_tokens, candidate.price_per_1k_output_tokens
    if split_in > 0 or split_out > 0:
        prompt, completion = usage.prompt_tokens_per_request, usage.completion_tokens_per_request
        return round(prompt * split_in + completion * split_out, 9)
    if price is None:
        return None
    return cost_per_1k_requests(usage.tokens_per_request, price)


def _entry(record: CandidateRecord, eval_type: EvalType, pricing: Pricing) -> LeaderboardEntry:
    outcome = record.outcomes.get(WorkItem.evaluation(eval_type))
    done = outcome.evaluation if outcome is not None else None
    if done is not None and done.ok and done.usage is not None:
        usage = done.usage
        price = pricing.of(record.model, record.candidate)
        return LeaderboardEntry(
            candidate_model=record.model,
            eval_type=eval_type,
            scores=done.scores,
            latency_p50_ms=usage.latency_p50_ms,
            latency_p95_ms=usage.latency_p95_ms,
            tokens_per_request=usage.tokens_per_request,
            cost_per_1k_requests_usd=candidate_cost_per_1k_requests(usage, record.candidate, price),
            deployment_seconds=record.deployment_seconds,
            external=record.external,
            rate_limited=usage.rate_limited,
        )
    return LeaderboardEntry(
        candidate_model=record.model,
        eval_type=eval_type,
        deployment_seconds=record.deployment_seconds if record.served else None,
        external=record.external,
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
