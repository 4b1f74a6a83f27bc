"""The leaderboard: entries per candidate and eval type, costs, and an honest recommendation."""

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from flywheel_contracts.events import (
    EvalDone,
    Leaderboard,
    ProductionBaseline,
    ProductionModel,
    Shortfall,
    UsageStats,
)
from flywheel_contracts.run_config import CandidateConfig, EvalType, RunConfig, WorkloadType
from flywheel_nim_manager import conductor
from flywheel_nim_manager.decision import _smallest_n, proportion_lower_bound
from flywheel_nim_manager.leaderboard import (
    Judgement,
    Pricing,
    build_leaderboard,
    candidate_cost_per_1k_requests,
    cost_per_1k_requests,
)
from flywheel_nim_manager.records import (
    CandidateRecord,
    Ending,
    EndReason,
    Phase,
    WorkItem,
    WorkOutcome,
)
from flywheel_nim_manager.testing.fakes import T0, candidate, eval_done, ready_event

pytestmark = pytest.mark.unit

ALL_TYPES = (EvalType.BASE, EvalType.ICL, EvalType.CUSTOMIZED)


def _setup(
    *candidates: CandidateConfig, min_score: float = 0.8
) -> tuple[RunConfig, list[CandidateRecord]]:
    run_id = uuid4()
    ready = ready_event(run_id, candidates, eval_types=ALL_TYPES, min_score=min_score)
    served = {
        "phase": Phase.DOWN,
        "granted_at": T0,
        "up_at": T0 + timedelta(seconds=30),
        "ended_at": T0 + timedelta(seconds=300),
        "ending": Ending(reason=EndReason.FINISHED, message="all work finished"),
    }
    records = [r.model_copy(update=served) for r in conductor.plan(run_id, ready.payload, T0)]
    return ready.payload.context.config, records


def _scored(
    record: CandidateRecord,
    eval_type: EvalType,
    score: float = 0.9,
    tokens: float = 100.0,
    **options: Any,
) -> CandidateRecord:
    done: EvalDone = eval_done(
        record.run_id, record.model, eval_type, score=score, tokens=tokens, **options
    ).payload
    outcomes = {**record.outcomes, WorkItem.evaluation(eval_type): WorkOutcome.of_eval(done)}
    return record.model_copy(update={"outcomes": outcomes})


def test_cost_per_thousand_requests() -> None:
    # 660.5 tokens per request at $0.0001 per 1k tokens: $0.06605 per 1,000 requests.
    assert cost_per_1k_requests(660.5, 0.0001) == pytest.approx(0.06605)


def test_separate_input_and_output_prices_cost_each_kind_of_token_at_its_own_price() -> None:
    usage = UsageStats(
        requests=10,
        latency_p50_ms=1.0,
        latency_p95_ms=2.0,
        prompt_tokens_per_request=600.0,
        completion_tokens_per_request=40.0,
    )
    split = CandidateConfig(
        model_name="org/hosted",
        price_per_1k_tokens=0.5,
        price_per_1k_input_tokens=0.0001,
        price_per_1k_output_tokens=0.0004,
    )
    # 1,000 requests: 600k prompt tokens at 0.0001/1k and 40k completion tokens at 0.0004/1k.
    assert candidate_cost_per_1k_requests(usage, split, 0.5) == pytest.approx(0.06 + 0.016)
    output_only = split.model_copy(update={"price_per_1k_input_tokens": 0.0})
    assert candidate_cost_per_1k_requests(usage, output_only, 0.5) == pytest.approx(0.016)
    single = CandidateConfig(model_name="org/nim", price_per_1k_tokens=0.0002)
    assert candidate_cost_per_1k_requests(usage, single, 0.0002) == pytest.approx(0.128)
    assert candidate_cost_per_1k_requests(usage, single, None) is None


def test_entries_carry_scores_latency_tokens_cost_and_uptime() -> None:
    config, [record] = _setup(candidate("org/small-1b", price_per_1k_tokens=0.0002))
    record = _scored(record, EvalType.BASE, score=0.9, tokens=400)
    board = build_leaderboard(WorkloadType.TOOL_CALLING, config, [record])
    base = board.entries[0]
    assert (base.candidate_model, base.eval_type) == ("org/small-1b", EvalType.BASE)
    assert base.scores[0].value == 0.9
    assert (base.latency_p50_ms, base.latency_p95_ms) == (100.0, 200.0)
    assert base.tokens_per_request == 400
    assert base.cost_per_1k_requests_usd == pytest.approx(0.08)
    assert base.deployment_seconds == 300
    # No customization for this candidate: base and ICL only, ICL without a result.
    assert [e.eval_type for e in board.entries] == [EvalType.BASE, EvalType.ICL]
    assert board.entries[1].error == "no result"


PRODUCTION = "org/prod-70b"
BASELINE = ProductionBaseline(
    models=(
        ProductionModel(model=PRODUCTION, records=90),
        ProductionModel(model="o/x", records=10),
    ),
    records=100,
    records_with_usage=100,
    prompt_tokens_per_request=750.0,
    completion_tokens_per_request=250.0,
    records_with_latency=100,
    latency_p50_ms=1000.0,
    latency_p95_ms=2000.0,
    requests_per_day=1000.0,
)
PRICED = Judgement(pricing=Pricing({PRODUCTION: 0.001}))


def _board(
    config: RunConfig,
    records: list[CandidateRecord],
    judgement: Judgement = PRICED,
    workload: WorkloadType = WorkloadType.TOOL_CALLING,
) -> Leaderboard:
    return build_leaderboard(workload, config, records, BASELINE, judgement)


def test_savings_and_ratios_are_measured_against_the_logged_production_model() -> None:
    config, [record] = _setup(candidate("org/small-1b", price_per_1k_tokens=0.0001))
    board = _board(config, [_scored(record, EvalType.BASE, tokens=100)])
    production = board.production
    assert production is not None and production.baseline.model == PRODUCTION
    # 1,000 tokens a request at $0.001 per 1k tokens: $1 per 1,000 requests, $30 a month at
    # 1,000 requests a day.
    assert production.cost_per_1k_requests_usd == pytest.approx(1.0)
    assert production.monthly_cost_usd == pytest.approx(30.0)
    entry = board.entries[0]
    assert entry.cost_per_1k_requests_usd == pytest.approx(0.01)
    assert entry.cost_ratio == pytest.approx(0.01)
    assert entry.monthly_saving_usd == pytest.approx(29.7)
    assert (entry.latency_p50_ratio, entry.latency_p95_ratio) == (0.1, 0.1)


def test_an_unknown_price_stays_unknown_and_is_never_taken_as_zero() -> None:
    config, [record] = _setup(candidate("org/unpriced-1b"))  # no price anywhere
    board = _board(config, [_scored(record, EvalType.BASE, tokens=100)], Judgement())
    production = board.production
    assert production is not None
    assert production.price_per_1k_tokens is None and production.cost_per_1k_requests_usd is None
    entry = board.entries[0]
    assert entry.cost_per_1k_requests_usd is None
    assert (entry.cost_ratio, entry.monthly_saving_usd) == (None, None)
    assert entry.latency_p95_ratio == 0.1  # what is known is still shown


def test_a_candidate_qualifies_on_the_lower_bound_of_its_interval_not_its_mean() -> None:
    config, [record] = _setup(candidate("org/small-1b", price_per_1k_tokens=0.0001))
    # 0.85 on 20 records, 95% interval 0.75-0.95: the mean clears 0.80, the interval does not.
    board = _board(config, [_scored(record, EvalType.BASE, score=0.85)])
    recommendation = board.recommendation
    assert recommendation.candidate_model is None
    [verdict, _] = recommendation.verdicts
    assert verdict.shortfall is Shortfall.INTERVAL_TOO_WIDE
    assert recommendation.records_needed is not None and recommendation.records_needed > 20
    assert f"would need about {recommendation.records_needed} evaluation records" in (
        recommendation.reason
    )
    assert recommendation.reason.startswith(f"No candidate can replace {PRODUCTION}")


def test_a_candidate_short_of_the_threshold_is_told_by_its_evaluation_that_came_nearest() -> None:
    config, [record] = _setup(
        candidate("org/small-1b", price_per_1k_tokens=0.0001, customization_enabled=True)
    )
    for eval_type, score in (
        (EvalType.BASE, 0.0),
        (EvalType.ICL, 0.1),
        (EvalType.CUSTOMIZED, 0.55),
    ):
        record = _scored(record, eval_type, score=score)
    recommendation = _board(config, [record]).recommendation
    assert recommendation.candidate_model is None
    assert {v.shortfall for v in recommendation.verdicts} == {Shortfall.BELOW_THRESHOLD}
    assert "org/small-1b (customized): 0.55" in recommendation.reason
    assert "(base)" not in recommendation.reason


def test_the_records_needed_are_the_fewest_whose_interval_clears_the_threshold() -> None:
    needed = _smallest_n(0.9, 20, proportion_lower_bound, 0.8)
    assert needed is not None
    assert proportion_lower_bound(0.9, needed) >= 0.8 > proportion_lower_bound(0.9, needed - 1)
    assert _smallest_n(0.8, 20, proportion_lower_bound, 0.8) is None  # never, at the threshold


def test_of_the_candidates_that_qualify_the_one_saving_most_is_recommended() -> None:
    config, (big, small, weak) = _setup(
        candidate("org/big-8b", price_per_1k_tokens=0.0003),
        candidate("org/small-1b", price_per_1k_tokens=0.0001),
        candidate("org/weak-1b", price_per_1k_tokens=0.00001),
    )
    records = [
        _scored(big, EvalType.BASE, score=0.95, half_width=0.05),
        _scored(small, EvalType.BASE, score=0.9, half_width=0.05),
        _scored(weak, EvalType.BASE, score=0.5),
    ]
    recommendation = _board(config, records).recommendation
    assert (recommendation.candidate_model, recommendation.model_id) == (
        "org/small-1b",
        "org/small-1b",
    )
    assert recommendation.monthly_saving_usd == pytest.approx(29.7)
    verdicts = {(v.candidate_model, v.eval_type): v for v in recommendation.verdicts}
    assert verdicts["org/big-8b", EvalType.BASE].shortfall is Shortfall.OUTRANKED
    assert verdicts["org/weak-1b", EvalType.BASE].shortfall is Shortfall.BELOW_THRESHOLD
    reason = recommendation.reason
    assert reason.startswith(f"Switch {config.workload_id} from {PRODUCTION} to org/small-1b")
    assert "function_name_and_args_accuracy 0.90 (95% CI 0.85-0.95, 20 records)" in reason
    assert "saving $29.70 a month (1% of the cost)" in reason
    assert "at 0.10x the p95 latency" in reason
    assert "org/weak-1b (base): 0.50" in reason


def test_a_customized_recommendation_names_the_customized_model_id_and_its_base() -> None:
    config, [record] = _setup(
        candidate("org/tuned-1b", customization_enabled=True, price_per_1k_tokens=0.0001)
    )
    customization = WorkOutcome(ok=True, customized_model="dfwbp/customized-org-tuned@cust-1")
    record = record.model_copy(update={"outcomes": {WorkItem.CUSTOMIZATION: customization}})
    record = _scored(_scored(record, EvalType.BASE, score=0.5), EvalType.CUSTOMIZED, score=0.95)
    recommendation = _board(config, [record]).recommendation
    assert recommendation.eval_type is EvalType.CUSTOMIZED
    assert recommendation.model_id == "dfwbp/customized-org-tuned@cust-1"
    assert recommendation.base_model == "org/tuned-1b"
    assert "to dfwbp/customized-org-tuned@cust-1 (customized from org/tuned-1b)" in (
        recommendation.reason
    )


def test_cost_latency_and_failure_limits_each_exclude_with_their_reason() -> None:
    config, (dear, slow, flaky) = _setup(
        candidate("org/dear-1b", price_per_1k_tokens=0.0009),
        candidate("org/slow-1b", price_per_1k_tokens=0.0001),
        candidate("org/flaky-1b", price_per_1k_tokens=0.0001),
    )
    records = [
        _scored(dear, EvalType.BASE, score=0.95, half_width=0.05, tokens=1000),
        _scored(slow, EvalType.BASE, score=0.95, half_width=0.05),
        _scored(flaky, EvalType.BASE, score=0.95, half_width=0.05, failed=5),
    ]
    strict = Judgement(
        pricing=PRICED.pricing, max_cost_ratio=0.5, max_latency_ratio=0.05, max_failed_ratio=0.1
    )
    recommendation = _board(config, records, strict).recommendation
    assert recommendation.candidate_model is None
    shortfalls = {
        v.candidate_model: v.shortfall
        for v in recommendation.verdicts
        if v.eval_type is EvalType.BASE
    }
    assert shortfalls == {
        "org/dear-1b": Shortfall.TOO_EXPENSIVE,
        "org/slow-1b": Shortfall.TOO_SLOW,
        "org/flaky-1b": Shortfall.TOO_MANY_FAILURES,
    }
    assert "5 of 20 requests failed" in recommendation.reason


def test_generic_workloads_are_judged_on_similarity() -> None:
    config, [record] = _setup(candidate("org/small-1b"))
    record = _scored(record, EvalType.BASE, score=0.99)  # a tool-calling metric only
    recommendation = _board(config, [record], workload=WorkloadType.GENERIC).recommendation
    assert recommendation.candidate_model is None
    assert recommendation.metric == "similarity"
    assert "org/small-1b (base): no similarity score" in recommendation.reason


def test_failures_are_explained_per_entry() -> None:
    config, (failed, customized) = _setup(
        candidate("org/never-1b"), candidate("org/tuned-1b", customization_enabled=True)
    )
    failed = failed.model_copy(
        update={
            "up_at": None,
            "phase": Phase.FAILED,
            "ending": Ending(reason=EndReason.DEPLOY_FAILED, message="NIM crashed"),
        }
    )
    outcomes = {
        WorkItem.CUSTOMIZATION: WorkOutcome(ok=False, error="training_failed: diverged"),
        WorkItem.ICL_EVAL: WorkOutcome(ok=False, error="job_failed: boom"),
    }
    customized = customized.model_copy(update={"outcomes": outcomes})
    board = build_leaderboard(WorkloadType.TOOL_CALLING, config, [failed, customized])
    errors = {(e.candidate_model, e.eval_type): e.error for e in board.entries}
    assert errors == {
        ("org/never-1b", EvalType.BASE): "deployment failed: NIM crashed",
        ("org/never-1b", EvalType.ICL): "deployment failed: NIM crashed",
        ("org/tuned-1b", EvalType.BASE): "no result",
        ("org/tuned-1b", EvalType.ICL): "evaluation failed: job_failed: boom",
        ("org/tuned-1b", EvalType.CUSTOMIZED): "customization failed: training_failed: diverged",
    }
    assert board.entries[0].deployment_seconds is None
    assert board.recommendation.candidate_model is None
