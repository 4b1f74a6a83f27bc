"""The emulator driven by NVIDIA's official SDK (nemo-microservices), call by call as Flywheel
makes them, every answer validated strictly against the SDK's pydantic types.

The SDK only *constructs* its models from JSON (it never fails on a wrong shape), so each raw
body is checked with ``TypeAdapter(SdkType).validate_python``. Lists are walked with the SDK's
own auto-pager, which asks for page + 1 until a page is empty.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import httpx
import pytest
from nemo_microservices import AsyncNeMoMicroservices
from nemo_microservices._response import AsyncAPIResponse
from nemo_microservices.pagination import DefaultPaginationPagination
from nemo_microservices.types import (
    CreateEmbeddingResponse,
    CustomizationConfig,
    Dataset,
    EvaluationConfig,
    EvaluationResult,
    EvaluationStatusDetails,
    Model,
    Namespace,
)
from nemo_microservices.types.chat import ChatCompletionResponse
from nemo_microservices.types.customization import CustomizationJob, CustomizationStatusDetails
from nemo_microservices.types.deployment import ModelDeployment
from nemo_microservices.types.evaluation import EvaluationJob
from nemo_microservices.types.shared import DeleteResponse
from pydantic import BaseModel, TypeAdapter

from flywheel_nmp_emulator.config import Settings, Timings
from flywheel_nmp_emulator.testing import (
    customization_config,
    deployment_body,
    hyperparameters,
    in_process,
    poll,
    tool_call_records,
    tool_calling_config,
    training_record,
    upload_dataset,
)

pytestmark = pytest.mark.unit

M = TypeVar("M", bound=BaseModel)
NS = "dfwbp"
MODEL = "meta/llama-3.2-1b-instruct"
JUDGE = "meta/llama-3.3-70b-instruct"
OUTPUT_MODEL = f"{NS}/customized-meta-llama-3.2-1b-instruct"


@dataclass
class Sdk:
    nmp: AsyncNeMoMicroservices
    http: httpx.AsyncClient


@pytest.fixture
async def sdk() -> AsyncIterator[Sdk]:
    timings = Timings(training_seconds_per_epoch=30, eval_seconds_per_record=0.01)
    async with in_process(Settings(gpus=16, timings=timings)) as http:
        # The SDK sends through the in-process ASGI transport of this httpx client.
        yield Sdk(AsyncNeMoMicroservices(base_url=str(http.base_url), http_client=http), http)


def strict(model: type[M], body: Any) -> M:
    """Validate a raw JSON body against an SDK type (raises on any wrong shape)."""
    return TypeAdapter(model).validate_python(body)


def exact(model: type[BaseModel], body: dict[str, Any]) -> None:
    """Also no field the SDK type does not declare (its models would silently accept them)."""
    assert set(body) <= set(model.model_fields), set(body) - set(model.model_fields)


async def raw(call: Awaitable[AsyncAPIResponse[Any]]) -> Any:
    response = await call
    return response.http_response.json()


def check_page(body: dict[str, Any], item: type[BaseModel]) -> None:
    assert body["object"] == "list" and isinstance(body["sort"], str)
    pagination = strict(DefaultPaginationPagination, body["pagination"])
    assert pagination.current_page_size == len(body["data"])
    for entry in body["data"]:
        strict(item, entry)


async def test_deployments_create_get_list_delete(sdk: Sdk) -> None:
    deployments = sdk.nmp.deployment.model_deployments
    names = []
    for model in (MODEL, "meta/llama-3.1-8b-instruct", "meta/llama-3.2-3b-instruct"):
        body = deployment_body(model)
        created = await raw(deployments.with_raw_response.create(**body))
        strict(ModelDeployment, created)
        exact(ModelDeployment, created)
        names.append(body["name"])
    got = await raw(deployments.with_raw_response.retrieve(names[0], namespace=NS))
    assert strict(ModelDeployment, got).status_details.status in ("pending", "ready")
    listed = [str(d.name) async for d in deployments.list(page_size=2)]
    assert sorted(listed) == sorted(names)
    check_page(await raw(deployments.with_raw_response.list(page_size=2, page=2)), ModelDeployment)
    filtered = [d async for d in deployments.list(filter={"namespace": "elsewhere"})]
    assert filtered == []
    deleted = await raw(deployments.with_raw_response.delete(names[0], namespace=NS))
    strict(DeleteResponse, deleted)
    assert [d.name async for d in deployments.list(page_size=1)] == names[1:]


async def _prepare_training(sdk: Sdk, traffic: list[dict[str, Any]]) -> None:
    train = [training_record(r) for r in traffic[:64]]
    await upload_dataset(sdk.http, NS, "train", {"training/train_data.jsonl": train})
    config = customization_config(MODEL, NS)
    created = await raw(sdk.nmp.customization.configs.with_raw_response.create(**config))
    strict(CustomizationConfig, created)


async def test_customization_config_and_job_lifecycle(
    sdk: Sdk, router_traffic: list[dict[str, Any]]
) -> None:
    await _prepare_training(sdk, router_traffic)
    jobs = sdk.nmp.customization.jobs
    config_ref = f"{NS}/{customization_config(MODEL, NS)['name']}"
    created = await raw(
        jobs.with_raw_response.create(
            config=config_ref,
            dataset={"name": "train", "namespace": NS},
            hyperparameters=cast(Any, hyperparameters()),
            name="customization-w-llama",
            namespace=NS,
            output_model=OUTPUT_MODEL,
            description="router LoRA",
            project="flywheel",
            custom_fields={"run_id": "r1"},
        )
    )
    job = strict(CustomizationJob, created)
    exact(CustomizationJob, created)
    assert job.id and job.namespace == NS and job.output_model == f"{OUTPUT_MODEL}@{job.id}"
    assert (job.description, job.project, job.custom_fields) == (
        "router LoRA",
        "flywheel",
        {"run_id": "r1"},
    )
    strict(CustomizationJob, await raw(jobs.with_raw_response.retrieve(job.id)))
    status = strict(CustomizationStatusDetails, await raw(jobs.with_raw_response.status(job.id)))
    assert status.status in ("created", "pending", "running")
    # Four more (one with the dataset as an "ns/name" string), so the list spans three pages.
    for _ in range(4):
        await jobs.create(
            config=config_ref,
            dataset=f"{NS}/train",
            hyperparameters=cast(Any, hyperparameters()),
            namespace=NS,
        )
    ids = [j.id async for j in jobs.list(page_size=2)]
    assert len(ids) == len(set(ids)) == 5
    check_page(await raw(jobs.with_raw_response.list(page_size=2)), CustomizationJob)
    in_ns = [j async for j in jobs.list(filter={"namespace": NS, "status": "running"})]
    assert len(in_ns) == 5
    cancelled = await raw(jobs.with_raw_response.cancel(job.id))
    assert strict(CustomizationJob, cancelled).status == "cancelled"
    exact(CustomizationJob, cancelled)
    model_ns, _, model_name = (job.output_model or "").partition("/")
    model = await raw(sdk.nmp.models.with_raw_response.retrieve(model_name, namespace=model_ns))
    strict(Model, model)
    deleted = await raw(sdk.nmp.models.with_raw_response.delete(model_name, namespace=model_ns))
    strict(DeleteResponse, deleted)
    configs = [c async for c in sdk.nmp.customization.configs.list(page_size=1)]
    assert len(configs) == 1


async def _evaluation_setup(sdk: Sdk, traffic: list[dict[str, Any]]) -> dict[str, Any]:
    await sdk.nmp.deployment.model_deployments.create(**deployment_body(MODEL))
    await poll(
        sdk.http,
        f"/v1/deployment/model-deployments/{NS}/{MODEL.replace('/', '-')}",
        lambda b: b["status_details"]["status"] == "ready",
    )
    files_url = await upload_dataset(sdk.http, NS, "eval", {"eval_data.jsonl": traffic[:20]})
    return tool_calling_config(files_url, JUDGE, limit=10)


async def test_evaluation_job_lifecycle(sdk: Sdk, router_traffic: list[dict[str, Any]]) -> None:
    config = await _evaluation_setup(sdk, tool_call_records(router_traffic))
    jobs = sdk.nmp.evaluation.jobs
    target: Any = {"type": "model", "model": MODEL}
    created = await raw(
        jobs.with_raw_response.create(
            config=cast(Any, config), target=target, namespace=NS, project="flywheel"
        )
    )
    job = strict(EvaluationJob, created)
    assert job.id and job.status in ("created", "pending", "running") and job.project == "flywheel"
    done = await poll(
        sdk.http, f"/v1/evaluation/jobs/{job.id}", lambda b: b["status"] == "completed"
    )
    strict(EvaluationJob, done)
    strict(EvaluationJob, await raw(jobs.with_raw_response.retrieve(job.id)))
    status = strict(EvaluationStatusDetails, await raw(jobs.with_raw_response.status(job.id)))
    assert status.progress == 100
    results = strict(EvaluationResult, await raw(jobs.with_raw_response.results(job.id)))
    assert results.job == job.id and results.tasks is not None
    archive = await jobs.download_results(job.id)
    with zipfile.ZipFile(io.BytesIO(await archive.read())) as zipped:
        assert "results.json" in zipped.namelist()
    # Cancelling a finished job answers it unchanged (the SDK types this answer as `object`).
    assert (await raw(jobs.with_raw_response.cancel(job.id)))["status"] == "completed"
    # A config stored once and referenced as "ns/name".
    stored = await raw(
        sdk.nmp.evaluation.configs.with_raw_response.create(
            type="custom", name="router-tools", namespace=NS, tasks=config["tasks"]
        )
    )
    strict(EvaluationConfig, stored)
    running = await jobs.create(config=f"{NS}/router-tools", target=target, namespace=NS)
    cancelled = await raw(jobs.with_raw_response.cancel(running.id or ""))
    assert strict(EvaluationJob, cancelled).status == "cancelled"
    await jobs.create(config=cast(Any, config), target=target)
    ids = [j.id async for j in jobs.list(page_size=2)]
    assert len(ids) == len(set(ids)) == 3
    check_page(
        await raw(jobs.with_raw_response.list(page_size=2, sort="-created_at")), EvaluationJob
    )
    assert [j.id async for j in jobs.list(filter={"status": "cancelled"})] == [running.id]
    newest = [j.namespace async for j in jobs.list(sort="-created_at", page_size=1)]
    assert newest[:1] == ["default"]
    await jobs.delete(job.id)  # the SDK discards the body (delete() -> None)
    assert len([j async for j in jobs.list()]) == 2


async def test_entity_store_namespace_dataset_calls(sdk: Sdk) -> None:
    created = await raw(sdk.nmp.namespaces.with_raw_response.create(id=NS))
    strict(Namespace, created)
    exact(Namespace, created)
    datasets = sdk.nmp.datasets
    for name in ("flywheel-eval-w-1", "flywheel-icl-w-1", "flywheel-train-w-1"):
        body = await raw(
            datasets.with_raw_response.create(
                name=name,
                namespace=NS,
                files_url=f"hf://datasets/{NS}/{name}",
                description="",
                project="flywheel",
            )
        )
        strict(Dataset, body)
        exact(Dataset, body)
    got = strict(
        Dataset, await raw(datasets.with_raw_response.retrieve("flywheel-eval-w-1", namespace=NS))
    )
    assert got.files_url == f"hf://datasets/{NS}/flywheel-eval-w-1"
    updated = await raw(
        datasets.with_raw_response.update(
            "flywheel-eval-w-1", namespace=NS, description="eval split"
        )
    )
    assert strict(Dataset, updated).description == "eval split"
    names = [str(d.name) async for d in datasets.list(page_size=2, filter={"namespace": NS})]
    assert sorted(names) == ["flywheel-eval-w-1", "flywheel-icl-w-1", "flywheel-train-w-1"]
    by_name = [str(d.name) async for d in datasets.list(sort="-name", page_size=2)]
    assert by_name == sorted(names, reverse=True)
    check_page(await raw(datasets.with_raw_response.list(page_size=2, page=2)), Dataset)
    deleted = await raw(datasets.with_raw_response.delete("flywheel-eval-w-1", namespace=NS))
    strict(DeleteResponse, deleted)
    assert len([d async for d in datasets.list()]) == 2
    assert [n.id async for n in sdk.nmp.namespaces.list(page_size=1)] == [NS]


async def test_a_page_past_the_end_is_empty(sdk: Sdk) -> None:
    await sdk.nmp.namespaces.create(id=NS)
    body = await raw(sdk.nmp.namespaces.with_raw_response.list(page=5, page_size=10))
    assert body["data"] == []
    assert body["pagination"] == {
        "page": 5,
        "page_size": 10,
        "current_page_size": 0,
        "total_pages": 1,
        "total_results": 1,
    }


async def test_customization_config_delete(sdk: Sdk) -> None:
    configs = sdk.nmp.customization.configs
    await configs.create(**customization_config(MODEL, NS))
    name = f"{MODEL.split('/', 1)[1]}@v1.0.0+dfw"
    deleted = await raw(configs.with_raw_response.delete(name, namespace=NS))
    assert isinstance(deleted, dict)  # the SDK types this answer as `object`
    assert [c async for c in configs.list()] == []


async def test_the_nim_proxy_answers_chat_and_embeddings_as_the_sdk_types_them(sdk: Sdk) -> None:
    """The judge (served without a deployment, as a hosted one is) and the embedding model,
    through the SDK's inference calls: the calls evaluator and datasets make."""
    chat = await raw(
        sdk.nmp.chat.completions.with_raw_response.create(
            model=JUDGE,
            messages=[{"role": "user", "content": "Rate it.\nRATING: <0 or 1>"}],
            max_tokens=64,
        )
    )
    answer = strict(ChatCompletionResponse, chat)
    assert answer.choices and answer.choices[0].message.role == "assistant"
    embedded = await raw(
        sdk.nmp.embeddings.with_raw_response.create(
            model="nvidia/llama-3.2-nv-embedqa-1b-v2", input=["a", "b"], input_type="query"
        )
    )
    vectors = strict(CreateEmbeddingResponse, embedded)
    assert len(vectors.data) == 2
