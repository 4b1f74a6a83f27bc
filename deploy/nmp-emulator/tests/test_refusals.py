"""Wrong paths and wrong shapes are refused as NMP refuses them: 404 unknown route or reference,
405 wrong method, 422 invalid body or query, 409 a duplicate name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from flywheel_nmp_emulator.config import Settings, Timings
from flywheel_nmp_emulator.testing import (
    customization_config,
    deployment_body,
    hyperparameters,
    in_process,
    training_record,
    upload_dataset,
)

pytestmark = pytest.mark.unit

NS = "dfwbp"
MODEL = "meta/llama-3.2-1b-instruct"
CONFIG_REF = f"{NS}/{customization_config(MODEL, NS)['name']}"
EVAL_CONFIG = {"type": "custom", "tasks": {"t": {"type": "chat-completion"}}}
TARGET = {"type": "model", "model": MODEL}


@pytest.fixture
async def ready(router_traffic: list[dict[str, Any]]) -> AsyncIterator[httpx.AsyncClient]:
    """An emulator with a training dataset and a customization config in place."""
    async with in_process(Settings(timings=Timings(training_seconds_per_epoch=30))) as client:
        train = [training_record(r) for r in router_traffic[:16]]
        await upload_dataset(client, NS, "train", {"training/train_data.jsonl": train})
        response = await client.post(
            "/v1/customization/configs", json=customization_config(MODEL, NS)
        )
        assert response.status_code == 200, response.text
        yield client


def job_body(**changes: Any) -> dict[str, Any]:
    body = {
        "config": CONFIG_REF,
        "dataset": {"name": "train", "namespace": NS},
        "hyperparameters": hyperparameters(),
        "namespace": NS,
    }
    return {**body, **changes}


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/customization/nothing-here")).status_code == 404


async def test_blueprint_cancel_path_customizations_is_404(ready: httpx.AsyncClient) -> None:
    job = (await ready.post("/v1/customization/jobs", json=job_body())).json()
    assert (await ready.post(f"/v1/customizations/{job['id']}/cancel")).status_code == 404


async def test_wrong_method_on_a_real_route_is_405(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/customization/jobs")).status_code == 405
    assert (await client.get("/v1/evaluation/jobs/eval-x/cancel")).status_code == 405


async def test_customization_job_without_hyperparameters_is_422(ready: httpx.AsyncClient) -> None:
    body = job_body()
    del body["hyperparameters"]
    assert (await ready.post("/v1/customization/jobs", json=body)).status_code == 422


async def test_customization_job_without_config_or_dataset_is_422(
    ready: httpx.AsyncClient,
) -> None:
    for field in ("config", "dataset"):
        body = job_body()
        del body[field]
        assert (await ready.post("/v1/customization/jobs", json=body)).status_code == 422


async def test_customization_job_with_an_unknown_field_is_422(ready: httpx.AsyncClient) -> None:
    response = await ready.post("/v1/customization/jobs", json=job_body(epochs=3))
    assert response.status_code == 422
    assert "epochs" in response.text


async def test_customization_job_with_a_wrongly_typed_field_is_422(
    ready: httpx.AsyncClient,
) -> None:
    assert (
        await ready.post("/v1/customization/jobs", json=job_body(dataset=42))
    ).status_code == 422
    assert (
        await ready.post("/v1/customization/jobs", json=job_body(hyperparameters={"epochs": 1}))
    ).status_code == 422  # finetuning_type is required


async def test_duplicate_job_name_in_a_namespace_is_409(ready: httpx.AsyncClient) -> None:
    first = await ready.post("/v1/customization/jobs", json=job_body(name="router-lora"))
    assert first.status_code == 200
    again = await ready.post("/v1/customization/jobs", json=job_body(name="router-lora"))
    assert again.status_code == 409


async def test_same_job_name_in_another_namespace_is_accepted(ready: httpx.AsyncClient) -> None:
    await ready.post("/v1/customization/jobs", json=job_body(name="router-lora"))
    other = await ready.post(
        "/v1/customization/jobs", json=job_body(name="router-lora", namespace="other")
    )
    assert other.status_code == 200, other.text


async def test_job_without_namespace_lands_in_default_and_is_named_by_its_id(
    ready: httpx.AsyncClient,
) -> None:
    body = job_body()
    del body["namespace"]
    job = (await ready.post("/v1/customization/jobs", json=body)).json()
    assert job["namespace"] == "default" and "name" not in job
    # Its name is its id: a second job named after that id collides.
    again = await ready.post(
        "/v1/customization/jobs", json=job_body(name=job["id"], namespace="default")
    )
    assert again.status_code == 409


async def test_unknown_config_reference_is_404(ready: httpx.AsyncClient) -> None:
    response = await ready.post("/v1/customization/jobs", json=job_body(config=f"{NS}/none@v1"))
    assert response.status_code == 404


async def test_unknown_dataset_reference_is_404(ready: httpx.AsyncClient) -> None:
    response = await ready.post("/v1/customization/jobs", json=job_body(dataset=f"{NS}/missing"))
    assert response.status_code == 404


async def test_reference_without_a_namespace_is_422(ready: httpx.AsyncClient) -> None:
    response = await ready.post("/v1/customization/jobs", json=job_body(config="no-slash"))
    assert response.status_code == 422


async def test_inline_customization_config_is_accepted(ready: httpx.AsyncClient) -> None:
    inline = customization_config(MODEL, NS, name="inline")
    response = await ready.post("/v1/customization/jobs", json=job_body(config=inline))
    assert response.status_code == 200, response.text
    assert response.json()["config"]["name"] == "inline"


async def test_config_without_max_seq_length_is_422(client: httpx.AsyncClient) -> None:
    config = customization_config(MODEL, NS)
    del config["max_seq_length"]
    assert (await client.post("/v1/customization/configs", json=config)).status_code == 422


async def test_evaluation_job_without_target_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/evaluation/jobs", json={"config": EVAL_CONFIG})
    assert response.status_code == 422


async def test_evaluation_job_with_an_unknown_field_is_422(client: httpx.AsyncClient) -> None:
    body = {"config": EVAL_CONFIG, "target": TARGET, "priority": "high"}
    assert (await client.post("/v1/evaluation/jobs", json=body)).status_code == 422


async def test_evaluation_target_of_an_unknown_type_is_422(client: httpx.AsyncClient) -> None:
    body = {"config": EVAL_CONFIG, "target": {"type": "robot", "model": MODEL}}
    assert (await client.post("/v1/evaluation/jobs", json=body)).status_code == 422


async def test_evaluation_config_of_the_wrong_shape_is_422(client: httpx.AsyncClient) -> None:
    body = {"config": ["not", "a", "config"], "target": TARGET}
    assert (await client.post("/v1/evaluation/jobs", json=body)).status_code == 422


async def test_unknown_evaluation_config_reference_is_404(client: httpx.AsyncClient) -> None:
    body = {"config": f"{NS}/no-such-config", "target": TARGET}
    assert (await client.post("/v1/evaluation/jobs", json=body)).status_code == 404


async def test_unknown_evaluation_target_reference_is_404(client: httpx.AsyncClient) -> None:
    body = {"config": EVAL_CONFIG, "target": f"{NS}/no-such-target"}
    assert (await client.post("/v1/evaluation/jobs", json=body)).status_code == 404


async def test_cancelling_an_unknown_evaluation_job_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/evaluation/jobs/eval-missing/cancel")).status_code == 404


async def test_deployment_without_image_tag_is_422(client: httpx.AsyncClient) -> None:
    body = deployment_body(MODEL)
    del body["config"]["nim_deployment"]["image_tag"]
    response = await client.post("/v1/deployment/model-deployments", json=body)
    assert response.status_code == 422


async def test_deployment_with_an_unknown_field_is_422(client: httpx.AsyncClient) -> None:
    body = {**deployment_body(MODEL), "replicas": 2}
    assert (await client.post("/v1/deployment/model-deployments", json=body)).status_code == 422


async def test_unknown_deployment_config_reference_is_404(client: httpx.AsyncClient) -> None:
    body = {**deployment_body(MODEL), "config": f"{NS}/no-such-config"}
    assert (await client.post("/v1/deployment/model-deployments", json=body)).status_code == 404


async def test_dataset_without_files_url_is_422(client: httpx.AsyncClient) -> None:
    body = {"name": "d", "namespace": NS}
    assert (await client.post("/v1/datasets", json=body)).status_code == 422


async def test_dataset_patch_with_name_in_the_body_is_422(client: httpx.AsyncClient) -> None:
    await client.post("/v1/datasets", json={"name": "d", "namespace": NS, "files_url": "hf://x"})
    response = await client.patch(f"/v1/datasets/{NS}/d", json={"name": "d", "description": ""})
    assert response.status_code == 422


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/v1/models/{NS}/no-such-model")).status_code == 404


async def test_page_zero_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/customization/jobs", params={"page": 0})).status_code == 422


async def test_non_numeric_page_size_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/datasets", params={"page_size": "many"})
    assert response.status_code == 422


async def test_unsupported_sort_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/evaluation/jobs", params={"sort": "-name"})
    assert response.status_code == 422


async def test_unsupported_filter_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/namespaces", params={"filter[colour]": "blue"})
    assert response.status_code == 422
