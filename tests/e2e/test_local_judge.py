"""A judge deployed through NMP for each run, with the same lifecycle as a candidate: a flywheel
of its own whose private emulator serves no judge unless one is deployed, and whose nim-manager
deploys the run's judge first (FLYWHEEL_NIM_MANAGER_LOCAL_JUDGE__ENABLED). The run completes
with the judge's ratings; the judge's GPU counted against the budget; afterwards nothing is left
in NMP, checked through the official SDK's list calls.

The run cannot pass without the deployment: the emulator answers 404 for the judge's model
until it is deployed (checked here), so correctness would have no score."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from flywheel_contracts.events import DeploymentRole, NimUp
from flywheel_contracts.run_config import DEMO_CANDIDATES, RunOverrides
from flywheel_contracts.traffic import ROUTER
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_nim_manager.testing.process import EventTap
from tests.support.emulator import peak_gpus, timeline
from tests.support.runs import (
    assert_nothing_left,
    assert_scored,
    completed,
    expected_entries,
    start_run,
)
from tests.support.world import (
    PrivateFlywheel,
    private_flywheel,
)

pytestmark = pytest.mark.e2e

JUDGE = "meta/llama-3.3-70b-instruct"
EMBEDDER = "nvidia/llama-3.2-nv-embedqa-1b-v2"
RECORDS = 200
SEED = 9
CANDIDATES = DEMO_CANDIDATES[1:3]  # two plain one-GPU candidates
OVERRIDES = RunOverrides(candidates=CANDIDATES, random_seed=7, eval_size=8)
BUDGET = 2  # the judge and one candidate at a time
SETTINGS: dict[str, dict[str, object]] = {
    "nim-manager": {
        "local_judge__enabled": "true",
        "local_judge__gpus": "1",
        "gpu_budget": str(BUDGET),
    },
    "evaluator": {"judge__decide_exact_cases": "false"},  # the judge rates every record
}


@pytest.fixture(scope="module")
def world(
    stack: StackHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateFlywheel]:
    # Only the embedding model is served without a deployment: no hosted judge.
    env = {"NMP_EMULATOR_ALWAYS_SERVED_MODELS": json.dumps([EMBEDDER])}
    folder = tmp_path_factory.mktemp("judge")
    with private_flywheel(
        stack, folder, "e2e-judge", records=RECORDS, seed=SEED, emulator_env=env, settings=SETTINGS
    ) as world:
        yield world


def test_no_judge_is_served_before_one_is_deployed(world: PrivateFlywheel) -> None:
    chat = {"model": JUDGE, "messages": [{"role": "user", "content": "RATING?"}]}
    assert world.emulator.post("/v1/chat/completions", json=chat).status_code == 404


async def test_a_run_deploys_its_own_judge_first_and_leaves_nothing_behind(
    world: PrivateFlywheel, world_tap: EventTap
) -> None:
    run_id = await start_run(world.setup, ROUTER, world.client_id, OVERRIDES)
    result = await completed(world_tap, run_id)
    assert_scored(result, expected_entries(CANDIDATES), "tool_calling_correctness")
    assert {e.candidate_model for e in result.leaderboard.entries} == {
        c.model_name for c in CANDIDATES
    }

    ups: list[NimUp] = [e.payload for e in world_tap.of("nim.up", run_id)]
    assert ups[0].role is DeploymentRole.JUDGE, "the judge is up first"
    assert [up.candidate.model_name for up in ups if up.role is DeploymentRole.JUDGE] == [JUDGE]
    assert {
        up.context.config.evaluation.judge_model
        for up in ups
        if up.role is DeploymentRole.CANDIDATE
    } == {JUDGE}
    await world_tap.wait_for("nim.down", run_id, count=len(CANDIDATES) + 1)

    events = timeline(world.emulator, "deployment")
    judged = [e for e in events if e["event"] == "requested" and "judge" in e["id"]]
    assert len(judged) == 1, f"one judge deployment for the run: {judged}"
    assert peak_gpus(events).gpus <= BUDGET
    await assert_nothing_left(world.emulator, world.flywheel, [run_id])
