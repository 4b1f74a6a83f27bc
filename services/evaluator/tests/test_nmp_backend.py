"""The nmp backend against RecordedNmp: the E1 body is the blueprint's (with the similarity
parser fixed), results are read as in 5.2, usage is measured on a sample, the job is deleted,
and a resumed evaluation polls its job instead of launching another."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flywheel_contracts.run_config import WorkloadType
from flywheel_contracts.runtime.nmp import EvaluationJob as NmpJob
from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_contracts.runtime.nmp.testing import RecordingTransport
from flywheel_evaluator.backends.native import NativeBackend
from flywheel_evaluator.backends.nmp import NmpBackend
from flywheel_evaluator.backends.nmp_config import evaluation_config
from flywheel_evaluator.clients.chat import ChatEndpoints
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.config import EvaluatorSettings, NmpBackendSettings
from flywheel_evaluator.models import EvaluationJob

from .fakes import CANDIDATE, FakeNmp, MemoryContext, completion, job, tool_record

pytestmark = pytest.mark.unit


async def _nothing(_: float) -> None:
    return None


async def run(
    fake: FakeNmp, ctx: MemoryContext, config: EvaluatorSettings
) -> tuple[Any, RecordingTransport]:
    transport = RecordingTransport(fake.transport())
    async with NmpClient(fake.settings, transport=transport, sleep=_nothing) as nmp:
        endpoints = ChatEndpoints(config.chat, transport=transport)
        datasets = DatasetFiles(nmp, config.eval_file)
        backend = NmpBackend(
            nmp, datasets, NativeBackend(datasets, endpoints, config), config, sleep=_nothing
        )
        try:
            return await backend.evaluate(ctx), transport
        finally:
            await endpoints.aclose()


def candidate(_body: dict[str, Any]) -> Any:
    return completion({"content": "ok"}, prompt_tokens=40, completion_tokens=8)


async def test_tool_calling_job_and_results() -> None:
    fake = FakeNmp(candidate, candidate)
    records = [tool_record(i) for i in range(30)]
    ctx = MemoryContext(job(fake.upload(records), limit=25))
    config = EvaluatorSettings(nmp_backend=NmpBackendSettings(usage_sample=5))
    evaluated, transport = await run(fake, ctx, config)

    launches = [
        r for r in transport.sent if r.method == "POST" and r.url.path == "/v1/evaluation/jobs"
    ]
    assert len(launches) == 1
    body = launches[0].json()
    assert isinstance(body, dict)
    assert body["target"] == {"type": "model", "model": CANDIDATE}
    task = body["config"]["tasks"]["custom-tool-calling"]
    assert task["dataset"] == {
        "files_url": "hf://datasets/dfwbp/flywheel-eval-unit-1/eval_data.jsonl",
        "limit": 25,
    }
    assert task["params"]["template"]["tool_choice"] == "required"
    assert set(task["metrics"]) == {"tool-calling-accuracy", "correctness"}

    scores = {s.name: s for s in evaluated.scores}
    assert scores["function_name_accuracy"].value == 0.9  # RecordedNmp's canned results
    assert scores["function_name_and_args_accuracy"].value == 0.7
    assert scores["tool_calling_correctness"].value == 0.8
    assert all(
        s.n == 25 and s.failed == 0 and s.ci_low < s.value < s.ci_high for s in scores.values()
    )
    assert evaluated.job_id == ctx.nmp_jobs[0] == ctx.started_ids[0]
    assert evaluated.usage.requests == 5
    assert evaluated.usage.prompt_tokens_per_request == 40
    assert any(r.method == "DELETE" and evaluated.job_id in r.url.path for r in transport.sent)


async def test_resumed_job_is_polled_not_launched_again() -> None:
    fake = FakeNmp(candidate, candidate)
    dataset = fake.upload([tool_record(i) for i in range(5)])
    transport = RecordingTransport(fake.transport())
    async with NmpClient(fake.settings, transport=transport) as nmp:
        launched = await nmp.evaluator.launch(
            evaluation_config(job(dataset), "judge", "eval_data.jsonl"), CANDIDATE
        )
    assert isinstance(launched, NmpJob)
    existing: EvaluationJob = job(dataset, nmp_job_id=launched.id)
    evaluated, transport = await run(fake, MemoryContext(existing), EvaluatorSettings())
    assert evaluated.job_id == existing.nmp_job_id
    assert not [
        r for r in transport.sent if r.method == "POST" and r.url.path == "/v1/evaluation/jobs"
    ]


def test_generic_config_fixes_the_similarity_parser() -> None:
    fake = FakeNmp(candidate, candidate)
    config = evaluation_config(
        job(fake.upload([]), WorkloadType.GENERIC), "judge", "eval_data.jsonl"
    )
    metric = config["tasks"]["llm-as-judge"]["metrics"]["llm-judge"]["params"]
    assert metric["scores"]["similarity"]["parser"]["pattern"] == "(\\d+)"
    assert metric["model"] == "judge"
    prompt = json.dumps(metric["template"]["messages"])
    assert "REFERENCE ANSWER" in prompt and "CANDIDATE ANSWER" in prompt
