"""Customizer: configs, LoRA jobs and their status machine, cancel, model sync."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flywheel_nmp_emulator.config import Faults, Settings, Timings
from flywheel_nmp_emulator.jobs import customization
from flywheel_nmp_emulator.jobs.fitting import Fitted
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

BASE = "meta/llama-3.2-1b-instruct"
CONFIG = customization_config(BASE)


async def _prepare(client: httpx.AsyncClient, traffic: list[dict[str, Any]]) -> None:
    train = [training_record(r) for r in traffic[:64]]
    await upload_dataset(
        client,
        "dfwbp",
        "train",
        {"training/train_data.jsonl": train, "validation/val_data.jsonl": train[:8]},
    )
    assert (await client.post("/v1/customization/configs", json=CONFIG)).status_code == 200


async def _create_job(client: httpx.AsyncClient, epochs: int = 2) -> dict[str, Any]:
    response = await client.post(
        "/v1/customization/jobs",
        json={
            "namespace": "dfwbp",
            "output_model": "dfwbp/customized-meta-llama-3.2-1b-instruct",
            "config": "dfwbp/llama-3.2-1b-instruct@v1.0.0+dfw",
            "dataset": {"name": "train", "namespace": "dfwbp"},
            "hyperparameters": hyperparameters(epochs),
        },
    )
    # The blueprint accepts only 200 here (201 raises).
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _trained_job_outcome(
    client: httpx.AsyncClient, traffic: list[dict[str, Any]]
) -> dict[str, Any]:
    """The status of a new job on `traffic`, once it has completed or failed."""
    await _prepare(client, traffic)
    job = await _create_job(client)
    return await poll(
        client,
        f"/v1/customization/jobs/{job['id']}/status",
        lambda b: b["status"] in ("completed", "failed"),
    )


async def test_config_duplicate_is_409_and_delete_works(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/customization/configs", json=CONFIG)).status_code == 200
    assert (await client.post("/v1/customization/configs", json=CONFIG)).status_code == 409
    path = "/v1/customization/configs/dfwbp/llama-3.2-1b-instruct@v1.0.0+dfw"
    assert (await client.get(path)).json()["target"] == f"{BASE}@2.0"
    # Deleting answers JSON; the config is then gone.
    assert (await client.delete(path)).status_code == 200
    assert (await client.get(path)).status_code == 404


async def test_job_progresses_through_running_to_completed(
    router_traffic: list[dict[str, Any]],
) -> None:
    timings = Timings(training_seconds_per_epoch=0.4, model_sync_seconds=1.5)
    async with in_process(Settings(timings=timings)) as client:
        await client.post("/v1/deployment/model-deployments", json=deployment_body(BASE))
        await _prepare(client, router_traffic)
        job = await _create_job(client, epochs=2)
        assert job["output_model"] == f"dfwbp/customized-meta-llama-3.2-1b-instruct@{job['id']}"
        assert job["id"].startswith("cust-")
        status_path = f"/v1/customization/jobs/{job['id']}/status"
        seen: list[dict[str, Any]] = []

        def record(body: dict[str, Any]) -> bool:
            seen.append(body)
            return bool(body["status"] == "completed")

        done = await poll(client, status_path, record)
        running = [s for s in seen if s["status"] == "running"]
        assert running, "the job was never seen running"
        assert all(0 <= s["percentage_done"] < 100 for s in running)
        assert any(s["percentage_done"] > 0 for s in running)
        assert done["percentage_done"] == 100 and done["epochs_completed"] == 2
        assert done["steps_completed"] == 2 * 4  # 64 records / batch 16 = 4 steps per epoch
        assert "validation function-name accuracy" in done["status_logs"][-1]["detail"]
        # Model sync: listed by the NIM proxy only after the sync delay.
        assert job["output_model"] not in {
            m["id"] for m in (await client.get("/v1/models")).json()["data"]
        }
        await poll(
            client, "/v1/models", lambda b: job["output_model"] in {m["id"] for m in b["data"]}
        )


async def test_cancel_answers_the_whole_job_and_frees_its_gpus(
    router_traffic: list[dict[str, Any]],
) -> None:
    async with in_process(Settings(timings=Timings(training_seconds_per_epoch=30))) as client:
        await _prepare(client, router_traffic)
        job = await _create_job(client)
        path = f"/v1/customization/jobs/{job['id']}/cancel"
        cancelled = await client.post(path)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["id"] == job["id"] and "hyperparameters" in cancelled.json()
        # Cancelling again is harmless.
        assert (await client.post(path)).json()["status"] == "cancelled"
        assert (await client.get("/emulator/state")).json()["gpus"]["used"] == 0
        assert (await client.post("/v1/customization/jobs/cust-missing/cancel")).status_code == 404


async def test_injected_training_failure_reports_detail(
    router_traffic: list[dict[str, Any]],
) -> None:
    async with in_process(Settings(faults=Faults(fail_customizations=["llama-3.2-1b"]))) as client:
        status = await _trained_job_outcome(client, router_traffic)
        assert status["status"] == "failed"
        assert "injected fault" in status["status_logs"][-1]["detail"]


@pytest.fixture
def held_fit(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Adapter fits wait for the returned event (set at the end at the latest), as a fit of a
    big training file takes seconds."""
    release = threading.Event()
    fit = customization._fit

    def held(train: bytes, validation: bytes | None) -> Fitted:
        release.wait(timeout=30)
        return fit(train, validation)

    monkeypatch.setattr(customization, "_fit", held)
    yield release
    release.set()


async def test_the_api_answers_while_an_adapter_is_fitted_and_the_job_completes_after(
    router_traffic: list[dict[str, Any]], held_fit: threading.Event
) -> None:
    async with in_process() as client:
        await _prepare(client, router_traffic)
        job = await _create_job(client)
        status_path = f"/v1/customization/jobs/{job['id']}/status"
        for _ in range(3):
            status = (await client.get(status_path)).json()
            assert status["status"] == "running" and status["percentage_done"] < 100
            assert (await client.get("/v1/models")).status_code == 200
        held_fit.set()
        done = await poll(client, status_path, lambda b: b["status"] != "running")
        assert done["status"] == "completed" and done["percentage_done"] == 100
        assert "validation function-name accuracy" in done["status_logs"][-1]["detail"]


async def test_a_job_cancelled_while_its_adapter_is_fitted_stays_cancelled(
    router_traffic: list[dict[str, Any]], held_fit: threading.Event
) -> None:
    async with in_process() as client:
        await _prepare(client, router_traffic)
        job = await _create_job(client)
        cancelled = await client.post(f"/v1/customization/jobs/{job['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        held_fit.set()
        await asyncio.sleep(0.3)  # several scheduler ticks after the fit ended
        status = (await client.get(f"/v1/customization/jobs/{job['id']}/status")).json()
        assert status["status"] == "cancelled"
        assert (await client.get("/emulator/state")).json()["gpus"]["used"] == 0


async def test_a_fit_that_raises_fails_its_job_with_the_error(
    router_traffic: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(train: bytes, validation: bytes | None) -> Fitted:
        raise MemoryError("no room for the index")

    monkeypatch.setattr(customization, "_fit", broken)
    async with in_process() as client:
        status = await _trained_job_outcome(client, router_traffic)
        assert status["status"] == "failed"
        assert status["status_logs"][-1]["detail"] == "Training failed: no room for the index"
        assert (await client.get("/emulator/state")).json()["gpus"]["used"] == 0


async def test_job_needs_an_existing_config_and_dataset(client: httpx.AsyncClient) -> None:
    body = {
        "config": "dfwbp/none@v1",
        "dataset": {"name": "train", "namespace": "dfwbp"},
        "hyperparameters": hyperparameters(),
    }
    assert (await client.post("/v1/customization/jobs", json=body)).status_code == 404
    await client.post("/v1/customization/configs", json={**CONFIG, "name": "c@v1"})
    assert (
        await client.post("/v1/customization/jobs", json={**body, "config": "dfwbp/c@v1"})
    ).status_code == 404
