"""A judge and an embedding model behind an API key, as blueprint users run them (a hosted
OpenAI-compatible endpoint): a flywheel of its own whose private emulator wants a random key for
its hosted models (NMP_EMULATOR_HOSTED_API_KEY), the evaluator and datasets configured with it
from their environment. A tool-calling run with semantic ICL selection (embeddings) and the judge
asked for every record completes with scores; then the key is looked for everywhere it must not
be: every service's log, every message (value, key, headers) of every topic under the run's
prefix, each service's `/metrics`, the run's HTML report and the dataset files. It is nowhere.

The run cannot pass without the key: the emulator refuses the judge and the embeddings without
it (checked here), so semantic ICL would fail the dataset and correctness would have no score.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from flywheel_contracts.run_config import DEMO_CANDIDATES, ExampleSelection, RunOverrides
from flywheel_contracts.traffic import ROUTER
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_nim_manager.testing.process import EventTap
from tests.support.leaks import dataset_files, leaks, places_of
from tests.support.runs import assert_scored, completed, expected_entries, start_run
from tests.support.world import (
    PrivateFlywheel,
    private_flywheel,
)

pytestmark = pytest.mark.e2e

KEY = secrets.token_urlsafe(24)
JUDGE = "meta/llama-3.3-70b-instruct"
EMBEDDER = "nvidia/llama-3.2-nv-embedqa-1b-v2"
RECORDS = 200
SEED = 5
# One candidate, customized: base, ICL (semantic, so embeddings) and customized evaluations.
CANDIDATES = DEMO_CANDIDATES[:1]
OVERRIDES = RunOverrides(
    candidates=CANDIDATES,
    random_seed=7,
    epochs=1,
    eval_size=8,
    icl_max_examples=2,
    example_selection=ExampleSelection.SEMANTIC_SIMILARITY,
)
# The services' settings carrying the key, from their environment as in production.
KEYED: dict[str, dict[str, object]] = {
    "evaluator": {"judge__api_key": KEY, "judge__decide_exact_cases": "false"},
    "datasets": {"build__embedding_api_key": KEY},
}


@pytest.fixture(scope="module")
def world(
    stack: StackHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateFlywheel]:
    with private_flywheel(
        stack,
        tmp_path_factory.mktemp("keyed"),
        "e2e-key",
        records=RECORDS,
        seed=SEED,
        emulator_env={"NMP_EMULATOR_HOSTED_API_KEY": KEY},
        settings=KEYED,
    ) as world:
        yield world


def test_the_hosted_models_refuse_a_request_without_the_key(world: PrivateFlywheel) -> None:
    emulator = world.emulator
    chat = {"model": JUDGE, "messages": [{"role": "user", "content": "RATING?"}]}
    embed = {"model": EMBEDDER, "input": ["x"]}
    for path, body in (("/v1/chat/completions", chat), ("/v1/embeddings", embed)):
        assert emulator.post(path, json=body).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        assert emulator.post(path, json=body, headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {KEY}"}
        assert emulator.post(path, json=body, headers=right).status_code == 200


async def test_a_run_with_a_keyed_judge_completes_and_the_key_is_nowhere(
    world: PrivateFlywheel, world_tap: EventTap
) -> None:
    setup, flywheel, emulator, logs = world.setup, world.flywheel, world.emulator, world.logs
    run_id = await start_run(setup, ROUTER, world.client_id, OVERRIDES)
    # The dataset files, read from the emulator's Data Store folder while they exist.
    await world_tap.wait_for("dataset.ready", run_id, timeout_s=90)
    files = dataset_files(world.nmp_folder)
    result = await completed(world_tap, run_id)
    # The judge rated records (it is asked for every one): its key was accepted.
    assert_scored(result, expected_entries(CANDIDATES), "tool_calling_correctness")
    answered = _chat_completions(emulator)
    print(f"chat completions answered by the emulator: {answered}")
    assert answered.get(JUDGE, 0) > 0

    places = places_of(setup, flywheel, logs, run_id, files)
    assert any(name.startswith("file ") for name in places), "no dataset file found"
    leaked = leaks(KEY, places)
    assert not leaked, f"the key appears in {leaked}"
    print(f"the key is in none of {len(places)} places")


def _chat_completions(emulator: httpx.Client) -> dict[str, int]:
    """Chat completions the emulator answered, per model."""
    response = emulator.get("/emulator/usage")
    response.raise_for_status()
    answered: dict[str, int] = response.json()["chat_completions"]
    return answered
