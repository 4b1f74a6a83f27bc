"""State survives a restart (a new app over the same state file), and timed transitions resume."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from flywheel_nmp_emulator.config import Settings, Timings
from flywheel_nmp_emulator.testing import (
    customization_config,
    deployment_body,
    hyperparameters,
    in_process,
    poll,
    training_record,
    upload_dataset,
)

pytestmark = pytest.mark.unit

MODEL = "meta/llama-3.2-1b-instruct"
DEPLOYMENT = "/v1/deployment/model-deployments/dfwbp/meta-llama-3.2-1b-instruct"


async def test_restart_keeps_everything(
    tmp_path: Path, router_traffic: list[dict[str, Any]]
) -> None:
    settings = Settings(state_file=tmp_path / "state.json", gpus=2)
    train = [training_record(r) for r in router_traffic[:200]]
    async with in_process(settings) as client:
        await client.post("/v1/namespaces", json={"id": "dfwbp"})
        await upload_dataset(client, "dfwbp", "train", {"training/train_data.jsonl": train})
        await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
        await poll(client, DEPLOYMENT, lambda b: b["status_details"]["status"] == "ready")
        config = customization_config(MODEL, name="c@v1")
        await client.post("/v1/customization/configs", json=config)
        job = (
            await client.post(
                "/v1/customization/jobs",
                json={
                    "config": "dfwbp/c@v1",
                    "dataset": {"name": "train", "namespace": "dfwbp"},
                    "hyperparameters": hyperparameters(epochs=1),
                    "output_model": "dfwbp/customized-meta-llama-3.2-1b-instruct",
                },
            )
        ).json()
        await poll(
            client,
            f"/v1/customization/jobs/{job['id']}/status",
            lambda b: b["status"] == "completed",
        )
        before = await client.post(
            "/v1/chat/completions",
            json={
                "model": job["output_model"],
                "messages": train[0]["messages"][:-1],
                "tools": train[0]["tools"],
            },
        )
        assert before.status_code == 200

    assert (tmp_path / "state.json").exists()
    async with in_process(settings) as client:
        assert (await client.get(DEPLOYMENT)).json()["status_details"]["status"] == "ready"
        assert (await client.get("/v1/namespaces/dfwbp")).status_code == 200
        assert (await client.get("/v1/datasets/dfwbp/train")).json()[
            "files_url"
        ] == "hf://datasets/dfwbp/train"
        stored = await client.get(
            "/v1/hf/datasets/dfwbp/train/resolve/main/training/train_data.jsonl"
        )
        assert json.loads(stored.content.splitlines()[0]) == train[0]
        status = (await client.get(f"/v1/customization/jobs/{job['id']}/status")).json()
        assert status["status"] == "completed"
        assert (await client.get(f"/v1/models/{job['output_model']}")).status_code == 200
        assert job["output_model"] in {
            m["id"] for m in (await client.get("/v1/models")).json()["data"]
        }
        after = await client.post(
            "/v1/chat/completions",
            json={
                "model": job["output_model"],
                "messages": train[0]["messages"][:-1],
                "tools": train[0]["tools"],
            },
        )
        # The adapter was reloaded from disk: the customized model answers exactly as before.
        assert after.json()["choices"] == before.json()["choices"]
        gpus = (await client.get("/emulator/state")).json()["gpus"]
        assert gpus["holders"] == {"deployment:dfwbp/meta-llama-3.2-1b-instruct": 1}


async def test_pending_transition_resumes_after_restart(tmp_path: Path) -> None:
    slow = Settings(state_file=tmp_path / "state.json", timings=Timings(deploy_seconds=0.4))
    async with in_process(slow) as client:
        await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
        assert (await client.get(DEPLOYMENT)).json()["status_details"]["status"] == "pending"
    await asyncio.sleep(0.5)
    async with in_process(slow) as client:
        # Its ready time passed while the emulator was down: it is ready as soon as it is back.
        assert (await client.get(DEPLOYMENT)).json()["status_details"]["status"] == "ready"
