"""The emulator as a real server process (python -m flywheel_nmp_emulator): it keeps its
deployments, jobs, datasets and customized models across a restart (issue 5, point 4)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_nmp_emulator.testing import (
    customization_config,
    deployment_body,
    emulator_process,
    free_port,
    hyperparameters,
    jsonl,
    training_record,
)

pytestmark = pytest.mark.integration

MODEL = "meta/llama-3.2-1b-instruct"


def _wait(client: httpx.Client, path: str, key: str, value: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = client.get(path).json()
        node: Any = body
        for part in key.split("."):
            node = node[part]
        if node == value:
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: {key} is {node}")
        time.sleep(0.05)


def _upload(client: httpx.Client, records: list[dict[str, Any]]) -> None:
    client.post(
        "/v1/hf/api/repos/create",
        json={"name": "train", "organization": "dfwbp", "type": "dataset"},
    )
    data = jsonl(records)
    lines = [
        {"key": "header", "value": {"summary": "upload"}},
        {
            "key": "file",
            "value": {
                "path": "training/train_data.jsonl",
                "content": base64.b64encode(data).decode(),
                "encoding": "base64",
            },
        },
    ]
    body = "\n".join(json.dumps(line) for line in lines)
    response = client.post(
        "/v1/hf/api/datasets/dfwbp/train/commit/main",
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200


def test_restart_keeps_state_and_resumes(
    tmp_path: Path, router_traffic: list[dict[str, Any]]
) -> None:
    state_file, port = tmp_path / "emulator.json", free_port()
    deployment = "/v1/deployment/model-deployments/dfwbp/meta-llama-3.2-1b-instruct"
    with emulator_process(state_file, port, gpus=2, deploy_seconds=0.2) as client:
        assert (
            client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL)).status_code
            == 200
        )
        _wait(client, deployment, "status_details.status", "ready")
        _upload(client, [training_record(r) for r in router_traffic[:100]])
        client.post(
            "/v1/datasets",
            json={"name": "train", "namespace": "dfwbp", "files_url": "hf://datasets/dfwbp/train"},
        )
        client.post(
            "/v1/customization/configs",
            json=customization_config(MODEL, name="c@v1"),
        )
        job = client.post(
            "/v1/customization/jobs",
            json={
                "config": "dfwbp/c@v1",
                "dataset": {"name": "train", "namespace": "dfwbp"},
                "hyperparameters": hyperparameters(),
                "output_model": "dfwbp/customized-meta-llama-3.2-1b-instruct",
            },
        ).json()
        _wait(client, f"/v1/customization/jobs/{job['id']}/status", "status", "completed")
        # A second deployment is still starting when the emulator goes down.
        second = "meta/llama-3.1-8b-instruct"
        client.post("/v1/deployment/model-deployments", json=deployment_body(second))
        # A real client timeout expires while an injected timeout holds the answer.
        client.put(
            "/emulator/faults",
            json={"endpoints": {"/v1/models": {"timeout_rate": 1.0, "timeout_seconds": 2}}},
        )
        with pytest.raises(httpx.ReadTimeout):
            client.get("/v1/models", timeout=0.2)
        client.put("/emulator/faults", json={})

    with emulator_process(state_file, port, gpus=2, deploy_seconds=0.2) as client:
        assert client.get(deployment).json()["status_details"]["status"] == "ready"
        _wait(
            client,
            "/v1/deployment/model-deployments/dfwbp/meta-llama-3.1-8b-instruct",
            "status_details.status",
            "ready",
        )
        assert (
            client.get(f"/v1/customization/jobs/{job['id']}/status").json()["status"] == "completed"
        )
        assert client.get("/v1/datasets/dfwbp/train").status_code == 200
        assert (
            client.get(
                "/v1/hf/datasets/dfwbp/train/resolve/main/training/train_data.jsonl"
            ).status_code
            == 200
        )
        assert client.get(f"/v1/models/{job['output_model']}").status_code == 200
        served = {m["id"] for m in client.get("/v1/models").json()["data"]}
        assert {MODEL, job["output_model"], "meta/llama-3.1-8b-instruct"} <= served
        events = client.get("/emulator/timeline").json()["events"]
        assert any(
            e["event"] == "ready" and e["id"].endswith("llama-3.1-8b-instruct") for e in events
        )
