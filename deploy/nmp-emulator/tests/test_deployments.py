"""Deployment Management: create (and its duplicate behaviour), status, delete with a JSON body."""

from __future__ import annotations

import httpx
import pytest

from flywheel_nmp_emulator.config import Faults, Settings, Timings
from flywheel_nmp_emulator.testing import deployment_body, in_process, poll

pytestmark = pytest.mark.unit

MODEL = "meta/llama-3.2-1b-instruct"
PATH = "/v1/deployment/model-deployments/dfwbp/meta-llama-3.2-1b-instruct"


async def test_status_moves_from_pending_to_ready_with_the_deploy_delay() -> None:
    async with in_process(Settings(timings=Timings(deploy_seconds=0.3))) as client:
        created = await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
        assert created.status_code == 200
        assert created.json()["status_details"]["status"] == "pending"
        assert (await client.get(PATH)).json()["status_details"]["status"] == "pending"
        ready = await poll(client, PATH, lambda b: b["status_details"]["status"] == "ready")
        assert ready["config"]["model"] == MODEL and ready["deployed"] is True


async def test_duplicate_create_says_model_deployment_already_exists(
    client: httpx.AsyncClient,
) -> None:
    assert (
        await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
    ).status_code == 200
    again = await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
    # As DMS does: a 500 whose text the blueprint (and our client) match.
    assert again.status_code == 500
    assert "model deployment already exists" in again.text


async def test_delete_returns_json_and_frees_gpus(client: httpx.AsyncClient) -> None:
    await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL, gpus=3))
    await poll(client, PATH, lambda b: b["status_details"]["status"] == "ready")
    assert (await client.get("/emulator/state")).json()["gpus"]["used"] == 3
    deleted = await client.delete(PATH)
    # SDK DeleteResponse: id, deleted_at, message (a JSON body, never an empty 204).
    assert deleted.status_code == 200
    assert deleted.json()["id"] == "dfwbp/meta-llama-3.2-1b-instruct"
    assert (await client.get(PATH)).status_code == 404
    assert (await client.delete(PATH)).status_code == 404
    assert (await client.get("/emulator/state")).json()["gpus"]["used"] == 0


async def test_injected_deployment_failure_frees_its_gpus() -> None:
    async with in_process(Settings(faults=Faults(fail_deployments=["1b"]))) as client:
        await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
        failed = await poll(client, PATH, lambda b: b["status_details"]["status"] != "pending")
        assert failed["status_details"]["status"] == "failed"
        assert (await client.get("/emulator/state")).json()["gpus"]["used"] == 0
        listed = (await client.get("/v1/deployment/model-deployments")).json()["data"]
        assert [d["name"] for d in listed] == ["meta-llama-3.2-1b-instruct"]
