"""The NMP adapter on the wire (RecordedNmp, plus the job listing it does not serve)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest

from flywheel_contracts.run_config import LoraConfig, TrainingConfig
from flywheel_contracts.runtime.nmp import NmpSettings
from flywheel_contracts.runtime.nmp.jobs import CancelNotApplied
from flywheel_contracts.runtime.nmp.testing import RecordedNmp, RecordingTransport
from flywheel_customizer.clients.nmp import JOB_KEY_FIELD, NmpTraining
from flywheel_customizer.jobs import name_scope
from flywheel_customizer.ports import JobRequest
from flywheel_customizer.testing.events import candidate

pytestmark = pytest.mark.unit

TRAINING = TrainingConfig(
    epochs=3,
    batch_size=8,
    learning_rate=0.0003,
    max_seq_length=2048,
    lora=LoraConfig(adapter_dim=16, adapter_dropout=0.05),
)


def _request(model: str = "meta/llama-3.2-1b-instruct", gpus: int = 2) -> JobRequest:
    return JobRequest(
        name_scope=name_scope(uuid4(), "wl"),
        candidate=candidate(model, gpus=gpus),
        training=TRAINING,
        train_dataset="flywheel-train-wl-1",
    )


@pytest.fixture
def recorded() -> RecordedNmp:
    return RecordedNmp()


@pytest.fixture
def wire(recorded: RecordedNmp) -> RecordingTransport:
    return RecordingTransport(recorded.transport())


@pytest.fixture
async def nmp(wire: RecordingTransport) -> AsyncIterator[NmpTraining]:
    training = NmpTraining(NmpSettings(), transport=wire)
    yield training
    await training.aclose()


async def test_submit_creates_config_and_job_with_the_runs_training_settings(
    nmp: NmpTraining, wire: RecordingTransport
) -> None:
    request = _request()
    job = await nmp.submit(request)

    config, created = wire.sent
    assert (config.method, config.url.path) == ("POST", "/v1/customization/configs")
    config_body = config.json()
    assert isinstance(config_body, dict)
    assert config_body["name"] == "llama-3.2-1b-instruct@v1.0.0+dfw"
    assert config_body["target"] == "meta/llama-3.2-1b-instruct@2.0"
    assert config_body["max_seq_length"] == 2048
    assert config_body["training_options"][0]["num_gpus"] == 2
    assert (created.method, created.url.path) == ("POST", "/v1/customization/jobs")
    assert created.json() == {
        "name": request.name,
        "namespace": "dfwbp",
        "custom_fields": {JOB_KEY_FIELD: request.name},
        "output_model": "dfwbp/customized-meta-llama-3.2-1b-instruct",
        "config": "dfwbp/llama-3.2-1b-instruct@v1.0.0+dfw",
        "dataset": {"name": "flywheel-train-wl-1", "namespace": "dfwbp"},
        "hyperparameters": {
            "training_type": "sft",
            "finetuning_type": "lora",
            "epochs": 3,
            "batch_size": 8,
            "learning_rate": 0.0003,
            "lora": {"adapter_dim": 16, "adapter_dropout": 0.05},
        },
    }
    assert job.output_model == f"dfwbp/customized-meta-llama-3.2-1b-instruct@{job.id}"


async def test_an_existing_config_is_fine(nmp: NmpTraining, recorded: RecordedNmp) -> None:
    await nmp.submit(_request())
    await nmp.submit(_request())
    assert len(recorded.state.customizations) == 2 and len(recorded.state.configs) == 1


async def test_find_job_recognises_the_job_by_the_key_nmp_echoes_in_custom_fields(
    nmp: NmpTraining,
) -> None:
    request, other = _request(), _request()
    job = await nmp.submit(request)
    await nmp.submit(other)
    assert await nmp.find_job(request.name) == job
    assert await nmp.find_job(_request().name) is None


def _listed(job_id: str, key: str, namespace: str = "dfwbp") -> dict[str, object]:
    return {
        "id": job_id,
        "namespace": namespace,
        "output_model": f"{namespace}/m@{job_id}",
        "custom_fields": {JOB_KEY_FIELD: key},
    }


async def test_find_job_pages_through_the_list() -> None:
    pages = {"1": [_listed("cust-1", "a")], "2": [_listed("cust-2", "b")]}
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        page = request.url.params["page"]
        asked.append(page)
        return httpx.Response(
            200, json={"data": pages[page], "pagination": {"page": int(page), "total_pages": 2}}
        )

    nmp = NmpTraining(NmpSettings(), transport=httpx.MockTransport(handle))
    try:
        found = await nmp.find_job("b")
        assert found is not None and found.id == "cust-2"
        assert await nmp.find_job("c") is None
    finally:
        await nmp.aclose()
    assert asked == ["1", "2", "1", "2"]


async def test_find_job_ignores_jobs_of_other_namespaces_and_asks_nmp_for_ours() -> None:
    asked: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("filter[namespace]"))
        # An NMP that ignores the filter: our key in another namespace is not our job.
        data = (
            [_listed("cust-9", "b", namespace="default")]
            if request.url.params["page"] == "1"
            else []
        )
        return httpx.Response(200, json={"data": data})

    nmp = NmpTraining(NmpSettings(), transport=httpx.MockTransport(handle))
    try:
        assert await nmp.find_job("b") is None
    finally:
        await nmp.aclose()
    assert asked == ["dfwbp", "dfwbp"]


async def test_status_cancel_and_served_models(
    nmp: NmpTraining, wire: RecordingTransport, recorded: RecordedNmp
) -> None:
    job = await nmp.submit(_request())
    assert (await nmp.status(job.id)).status == "created"
    await nmp.cancel(job.id)
    assert (wire.sent[-1].method, wire.sent[-1].url.path) == (
        "POST",
        f"/v1/customization/jobs/{job.id}/cancel",
    )
    assert (await nmp.status(job.id)).status == "cancelled"
    recorded.state.served.add(job.output_model)
    assert job.output_model in await nmp.served_models()
    await nmp.ping()


async def test_a_cancel_answered_404_while_the_job_still_runs_is_not_a_success() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/cancel"):
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, json={"status": "running", "status_logs": []})

    nmp = NmpTraining(NmpSettings(), transport=httpx.MockTransport(handle))
    try:
        with pytest.raises(CancelNotApplied, match="is running"):
            await nmp.cancel("cust-1")
    finally:
        await nmp.aclose()


async def test_a_cancel_answered_404_counts_when_a_read_confirms_the_job_is_gone() -> None:
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.method} {request.url.path}")
        return httpx.Response(404, json={"detail": "Not Found"})

    nmp = NmpTraining(NmpSettings(), transport=httpx.MockTransport(handle))
    try:
        await nmp.cancel("cust-1")
    finally:
        await nmp.aclose()
    assert asked == ["GET /v1/customization/jobs/cust-1/status"]
