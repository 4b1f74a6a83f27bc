"""Evaluator: job status machine, result shapes of contract 5.2, ZIP, delete."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import httpx
import pytest

from flywheel_contracts.traffic.records import TrafficConfig, generate_records
from flywheel_nmp_emulator.config import Settings, Timings
from flywheel_nmp_emulator.testing import (
    deployment_body,
    generic_config,
    in_process,
    poll,
    tool_calling_config,
    upload_dataset,
)

pytestmark = pytest.mark.unit

MODEL = "meta/llama-3.2-1b-instruct"
JUDGE = "meta/llama-3.3-70b-instruct"


async def _launch(client: httpx.AsyncClient, config: dict[str, Any], model: str = MODEL) -> str:
    response = await client.post(
        "/v1/evaluation/jobs", json={"config": config, "target": {"type": "model", "model": model}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "created"
    job_id: str = response.json()["id"]
    return job_id


async def test_tool_calling_job_runs_and_reports_the_blueprint_shape(
    router_traffic: list[dict[str, Any]],
) -> None:
    async with in_process(Settings(timings=Timings(eval_seconds_per_record=0.01))) as client:
        await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
        files_url = await upload_dataset(
            client, "dfwbp", "eval", {"eval_data.jsonl": router_traffic[:40]}
        )
        job_id = await _launch(client, tool_calling_config(files_url, JUDGE, limit=30))
        assert (await client.get(f"/v1/evaluation/jobs/{job_id}/results")).status_code == 409
        statuses: list[str] = []
        progress: list[float] = []

        def record(body: dict[str, Any]) -> bool:
            statuses.append(body["status"])
            progress.append(body["status_details"]["progress"])
            return body["status"] in ("completed", "failed")

        await poll(client, f"/v1/evaluation/jobs/{job_id}", record)
        assert set(statuses) <= {"created", "running", "completed"} and statuses[-1] == "completed"
        assert "running" in statuses
        assert progress == sorted(progress) and progress[-1] == 100
        results = (await client.get(f"/v1/evaluation/jobs/{job_id}/results")).json()
        metrics = results["tasks"]["custom-tool-calling"]["metrics"]
        scores = metrics["tool-calling-accuracy"]["scores"]
        for name in ("function_name_accuracy", "function_name_and_args_accuracy"):
            assert 0 <= scores[name]["value"] <= 1
            assert scores[name]["stats"]["count"] == 30  # the dataset limit applies
        assert 0 <= metrics["correctness"]["scores"]["rating"]["value"] <= 1
        archive = await client.get(f"/v1/evaluation/jobs/{job_id}/download-results")
        assert archive.status_code == 200
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
            assert json.loads(zipped.read("results.json"))["tasks"] == results["tasks"]
        assert (
            await client.delete(
                f"/v1/evaluation/jobs/{job_id}", headers={"accept": "application/json"}
            )
        ).status_code == 200
        assert (await client.get(f"/v1/evaluation/jobs/{job_id}")).status_code == 404


async def test_generic_job_scores_similarity_with_the_judge(client: httpx.AsyncClient) -> None:
    chat = [
        r
        for r in generate_records(
            200, seed=5, config=TrafficConfig(workloads=("customer-service-chat",))
        )
        if r["response"]["choices"][0]["message"].get("content")
    ][:25]
    await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
    files_url = await upload_dataset(client, "dfwbp", "chat", {"eval_data.jsonl": chat})
    job_id = await _launch(client, generic_config(files_url, JUDGE))
    done = await poll(
        client, f"/v1/evaluation/jobs/{job_id}", lambda b: b["status"] in ("completed", "failed")
    )
    assert done["status"] == "completed", done
    results = (await client.get(f"/v1/evaluation/jobs/{job_id}/results")).json()
    similarity = results["tasks"]["llm-as-judge"]["metrics"]["llm-judge"]["scores"]["similarity"]
    assert 1 <= similarity["value"] <= 10 and similarity["stats"]["count"] == 25


async def test_job_fails_with_a_reason(
    client: httpx.AsyncClient, router_traffic: list[dict[str, Any]]
) -> None:
    files_url = await upload_dataset(
        client, "dfwbp", "eval", {"eval_data.jsonl": router_traffic[:5]}
    )
    undeployed = await _launch(client, tool_calling_config(files_url, JUDGE))
    done = await poll(
        client,
        f"/v1/evaluation/jobs/{undeployed}",
        lambda b: b["status"] in ("completed", "failed"),
    )
    assert done["status"] == "failed" and "not served" in done["status_details"]["message"]
    missing = await _launch(
        client, tool_calling_config("hf://datasets/dfwbp/nothing", JUDGE), model=JUDGE
    )
    done = await poll(
        client, f"/v1/evaluation/jobs/{missing}", lambda b: b["status"] in ("completed", "failed")
    )
    assert done["status"] == "failed" and "does not exist" in done["status_details"]["message"]
    assert (await client.get(f"/v1/evaluation/jobs/{missing}/download-results")).status_code == 409


async def test_create_rejects_configs_without_tasks(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/evaluation/jobs",
        json={"config": {"type": "custom"}, "target": {"type": "model", "model": MODEL}},
    )
    assert response.status_code == 422
