"""The answer a user came for, on the real stack: a run whose customized candidate clears the
workload's threshold is recommended by its customized model id, priced against the production
model that served the logged traffic; a run where nothing clears says why, candidate by
candidate.

A flywheel of its own with enough tool-calling traffic (1,500 records) for the emulator's
LoRA training to learn arguments: its customized 1B model reaches about 0.85 on
`function_name_and_args_accuracy`, whose 95% lower bound on 100 evaluation records clears a
threshold of 0.7 (the workload's, set per run), while the base models stay far below it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flywheel_contracts.cli.bus import Record
from flywheel_contracts.cli.kafka import KafkaBus
from flywheel_contracts.cli.runs import read_run_events
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.events import Shortfall
from flywheel_contracts.report import build_report
from flywheel_contracts.report.drilldown import recommended_drilldown
from flywheel_contracts.run_config import DEMO_CANDIDATES, EvalType, RunOverrides
from flywheel_contracts.traffic import ROUTER
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_nim_manager.testing.process import EventTap
from tests.support.runs import completed, kafka, start_run
from tests.support.world import (
    PrivateFlywheel,
    private_flywheel,
)

pytestmark = pytest.mark.e2e

PRODUCTION = "meta/llama-3.3-70b-instruct"  # what the generated traffic logs as its model
SMALL, PLAIN = DEMO_CANDIDATES[0], DEMO_CANDIDATES[1]
RECORDS = 1500
THRESHOLD = 0.7
OVERRIDES = RunOverrides(
    candidates=(SMALL, PLAIN),
    random_seed=7,
    eval_size=100,
    min_score_to_recommend=THRESHOLD,
)


@pytest.fixture(scope="module")
def world(
    stack: StackHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateFlywheel]:
    folder = tmp_path_factory.mktemp("answer")
    with private_flywheel(stack, folder, "e2e-answer", records=RECORDS, seed=21) as world:
        yield world


async def test_a_customized_candidate_that_clears_the_threshold_is_the_answer(
    world: PrivateFlywheel, world_tap: EventTap
) -> None:
    run_id = await start_run(world.setup, ROUTER, world.client_id, OVERRIDES)
    result = await completed(world_tap, run_id)
    board = result.leaderboard
    production = board.production
    assert production is not None, "no production baseline from the logs"
    assert production.baseline.model == PRODUCTION
    assert production.cost_per_1k_requests_usd and production.monthly_cost_usd

    recommendation = board.recommendation
    print(f"\n{recommendation.reason}")
    assert recommendation.eval_type is EvalType.CUSTOMIZED, recommendation.reason
    assert recommendation.base_model == SMALL.model_name
    done = [e.payload for e in world_tap.of("customization.done", run_id)]
    assert recommendation.model_id in {d.customized_model for d in done}
    assert recommendation.score is not None and recommendation.threshold == THRESHOLD
    assert recommendation.score.ci_low >= THRESHOLD
    assert recommendation.monthly_saving_usd is not None and recommendation.monthly_saving_usd > 0
    assert recommendation.cost_ratio is not None and recommendation.cost_ratio < 1
    assert recommendation.latency_p95_ratio is not None
    assert recommendation.reason.startswith(f"Switch {ROUTER} from {PRODUCTION} to ")
    assert recommendation.model_id is not None and recommendation.model_id in recommendation.reason
    others = [v for v in recommendation.verdicts if v.eval_type is not EvalType.CUSTOMIZED]
    assert others and all(v.shortfall is not None for v in others)

    # The evidence: what the recommended candidate answered, record by record, in the report.
    drilldown = recommended_drilldown(world.flywheel["evaluator"].url, run_id, result)
    assert drilldown is not None and drilldown.total == OVERRIDES.eval_size
    assert len(drilldown.records) == 20
    for record in drilldown.records:
        assert record.prompt and record.production_answer, record
        assert record.candidate_answer is not None and "function_name_accuracy" in record.verdict
    events = read_run_events(KafkaBus(kafka(world.setup)), run_id, _refuse_invalid)
    html = build_report(run_id, events, drilldown)
    assert f"What {SMALL.model_name} (customized) answered" in html


def _refuse_invalid(_record: Record, problem: InvalidEvent) -> None:
    raise AssertionError(f"an invalid event on the run's topics: {problem}")


async def test_a_run_where_nothing_clears_the_threshold_says_why_per_candidate(
    world: PrivateFlywheel, world_tap: EventTap
) -> None:
    plain = DEMO_CANDIDATES[1:]
    overrides = OVERRIDES.model_copy(update={"candidates": plain, "eval_types": (EvalType.BASE,)})
    run_id = await start_run(world.setup, ROUTER, world.client_id, overrides)
    recommendation = (await completed(world_tap, run_id)).leaderboard.recommendation
    print(f"\n{recommendation.reason}")
    assert recommendation.candidate_model is None and recommendation.model_id is None
    assert recommendation.reason.startswith(f"No candidate can replace {PRODUCTION} on {ROUTER}")
    assert {v.candidate_model for v in recommendation.verdicts} == {c.model_name for c in plain}
    for verdict in recommendation.verdicts:
        assert not verdict.qualified
        assert verdict.shortfall in {Shortfall.BELOW_THRESHOLD, Shortfall.INTERVAL_TOO_WIDE}
        assert verdict.candidate_model in recommendation.reason
