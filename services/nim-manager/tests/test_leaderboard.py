"""The leaderboard: entries per candidate and eval type, costs, and an honest recommendation."""

from datetime import timedelta
from uuid import uuid4

import pytest

from flywheel_contracts.events import EvalDone
from flywheel_contracts.run_config import CandidateConfig, EvalType, RunConfig, WorkloadType
from flywheel_nim_manager import conductor
from flywheel_nim_manager.leaderboard import build_leaderboard, cost_per_1k_requests
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
    record: CandidateRecord, eval_type: EvalType, score: float = 0.9, tokens: float = 100.0
) -> CandidateRecord:
    done: EvalDone = eval_done(
        record.run_id, record.model, eval_type, score=score, tokens=tokens
    ).payload
    outcomes = {**record.outcomes, WorkItem.evaluation(eval_type): WorkOutcome.of_eval(done)}
    return record.model_copy(update={"outcomes": outcomes})


def test_cost_per_thousand_requests() -> None:
    # 660.5 tokens per request at $0.0001 per 1k tokens: $0.06605 per 1,000 requests.
    assert cost_per_1k_requests(660.5, 0.0001) == pytest.approx(0.06605)


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


def test_recommends_the_cheapest_candidate_that_qualifies() -> None:
    config, (big, small, weak) = _setup(
        candidate("org/big-8b", price_per_1k_tokens=0.0003),
        candidate("org/small-1b", price_per_1k_tokens=0.0001),
        candidate("org/weak-1b", price_per_1k_tokens=0.00001),
    )
    records = [
        _scored(big, EvalType.BASE, score=0.95),
        _scored(small, EvalType.BASE, score=0.85),
        _scored(weak, EvalType.BASE, score=0.5),
    ]
    recommendation = build_leaderboard(WorkloadType.TOOL_CALLING, config, records).recommendation
    assert (recommendation.candidate_model, recommendation.eval_type) == (
        "org/small-1b",
        EvalType.BASE,
    )
    assert "human review" in recommendation.reason
    assert "function_name_and_args_accuracy 0.850" in recommendation.reason


def test_at_equal_cost_the_better_score_wins() -> None:
    config, [record] = _setup(candidate("org/small-1b"))
    record = _scored(_scored(record, EvalType.BASE, score=0.85), EvalType.ICL, score=0.95)
    recommendation = build_leaderboard(WorkloadType.TOOL_CALLING, config, [record]).recommendation
    assert recommendation.eval_type is EvalType.ICL


def test_no_candidate_qualifies_says_so_with_the_best_score() -> None:
    config, [record] = _setup(candidate("org/small-1b"), min_score=0.9)
    record = _scored(record, EvalType.BASE, score=0.7)
    recommendation = build_leaderboard(WorkloadType.TOOL_CALLING, config, [record]).recommendation
    assert recommendation.candidate_model is None
    assert recommendation.reason.startswith("no candidate qualifies")
    assert "0.700" in recommendation.reason
    assert "org/small-1b" in recommendation.reason


def test_generic_workloads_are_judged_on_similarity() -> None:
    config, [record] = _setup(candidate("org/small-1b"))
    record = _scored(record, EvalType.BASE, score=0.99)  # a tool-calling metric only
    recommendation = build_leaderboard(WorkloadType.GENERIC, config, [record]).recommendation
    assert recommendation.candidate_model is None
    assert "no evaluation produced similarity" in recommendation.reason


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
