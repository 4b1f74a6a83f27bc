"""Acceptance (issue 5, point 3) and the inventory's FIFO rules."""

from __future__ import annotations

import httpx
import pytest

from flywheel_nmp_emulator.config import Settings
from flywheel_nmp_emulator.gpu import GpuInventory
from flywheel_nmp_emulator.state.records import GpuLedger
from flywheel_nmp_emulator.testing import (
    customization_config,
    deployment_body,
    hyperparameters,
    in_process,
    poll,
)

pytestmark = pytest.mark.unit

MODELS = ("meta/llama-3.2-1b-instruct", "meta/llama-3.2-3b-instruct", "meta/llama-3.1-8b-instruct")


def _path(model: str) -> str:
    return f"/v1/deployment/model-deployments/dfwbp/{model.replace('/', '-')}"


async def _status(client: httpx.AsyncClient, model: str) -> dict[str, str]:
    response = await client.get(_path(model))
    assert response.status_code == 200
    details: dict[str, str] = response.json()["status_details"]
    return details


async def test_third_deployment_waits_for_a_free_gpu_then_becomes_ready() -> None:
    async with in_process(Settings(gpus=2)) as client:
        for model in MODELS:
            assert (
                await client.post("/v1/deployment/model-deployments", json=deployment_body(model))
            ).status_code == 200
        for model in MODELS[:2]:
            await poll(client, _path(model), lambda b: b["status_details"]["status"] == "ready")
        waiting = await _status(client, MODELS[2])
        assert waiting["status"] == "pending"
        assert "waiting for GPUs" in waiting["description"]
        served = {m["id"] for m in (await client.get("/v1/models")).json()["data"]}
        assert MODELS[2] not in served and set(MODELS[:2]) <= served

        deleted = await client.delete(_path(MODELS[0]))
        assert deleted.status_code == 200 and "deleted" in deleted.json()["message"]
        await poll(client, _path(MODELS[2]), lambda b: b["status_details"]["status"] == "ready")

        events = (await client.get("/emulator/timeline", params={"kind": "deployment"})).json()[
            "events"
        ]
        order = [
            (e["id"].split("/")[1], e["event"])
            for e in events
            if e["event"] in ("ready", "deleted")
        ]
        first, third = MODELS[0].replace("/", "-"), MODELS[2].replace("/", "-")
        assert order.index((first, "deleted")) < order.index((third, "ready"))
        gpus = (await client.get("/emulator/state")).json()["gpus"]
        assert gpus["used"] == 2 and gpus["queue"] == []


async def test_deployment_larger_than_the_cluster_says_so() -> None:
    async with in_process(Settings(gpus=2)) as client:
        await client.post(
            "/v1/deployment/model-deployments",
            json=deployment_body("meta/llama-3.3-70b-instruct", gpus=4),
        )
        details = await _status(client, "meta/llama-3.3-70b-instruct")
        assert details["status"] == "pending"
        assert "cluster has only 2" in details["description"]


async def test_training_job_without_gpus_reports_not_enough_resources(
    client: httpx.AsyncClient,
) -> None:
    # The 4-GPU fixture cluster is filled by one deployment, then a job asks for a GPU.
    await client.post(
        "/v1/deployment/model-deployments",
        json=deployment_body("meta/llama-3.3-70b-instruct", gpus=4),
    )
    await client.post(
        "/v1/hf/api/repos/create",
        json={"name": "train", "organization": "dfwbp", "type": "dataset"},
    )
    config = customization_config("meta/llama-3.2-1b-instruct", name="c@v1")
    await client.post("/v1/customization/configs", json=config)
    job = await client.post(
        "/v1/customization/jobs",
        json={
            "config": "dfwbp/c@v1",
            "dataset": {"name": "train", "namespace": "dfwbp"},
            "hyperparameters": hyperparameters(epochs=1),
        },
    )
    status = (await client.get(f"/v1/customization/jobs/{job.json()['id']}/status")).json()
    assert status["status"] == "pending"
    assert status["status_logs"][-1]["message"] == "NotEnoughResources"
    await client.delete("/v1/deployment/model-deployments/dfwbp/meta-llama-3.3-70b-instruct")
    status = (await client.get(f"/v1/customization/jobs/{job.json()['id']}/status")).json()
    # The training file is missing, so once it has its GPU the job fails, saying why.
    assert status["status"] == "failed"
    assert "training" in status["status_logs"][-1]["detail"]


def test_fifo_head_of_line_blocks_smaller_requests() -> None:
    inventory = GpuInventory(4, GpuLedger())
    inventory.request("a", 3, 0.0)
    inventory.request("big", 4, 1.0)
    inventory.request("small", 1, 2.0)
    assert inventory.grant() == ["a"]
    # "small" would fit, but "big" is first in line and must not be starved.
    assert inventory.grant() == []
    assert "1 request(s) ahead" in inventory.waiting_message("small")
    inventory.release("a")
    assert inventory.grant() == ["big"]
    inventory.release("big")
    assert inventory.grant() == ["small"]
    assert inventory.used == 1 and inventory.free == 3


def test_request_is_idempotent_and_release_drops_queued_requests() -> None:
    inventory = GpuInventory(1, GpuLedger())
    inventory.request("a", 1, 0.0)
    inventory.request("a", 1, 0.0)
    assert inventory.grant() == ["a"]
    inventory.request("a", 1, 0.0)
    inventory.request("b", 1, 1.0)
    assert len(inventory.ledger.queue) == 1
    assert inventory.release("b") and inventory.ledger.queue == []
    assert not inventory.release("missing")
