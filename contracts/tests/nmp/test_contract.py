"""One test per call of nmp-contract.md: the exact method, URL and body the client sends, and how
it reads the answer. Each runs on RecordedNmp and on the live emulator (see conftest.py), using
real call sequences, so resources are created before they are read, polled or deleted."""

import asyncio
import base64
import io
import json
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from typing import TypeVar

import pytest

from flywheel_contracts.runtime.nmp import (
    AlreadyExists,
    Created,
    CustomizationConfigSpec,
    CustomizationJob,
    Hyperparameters,
    NimDeploymentSpec,
    NmpClient,
    NmpNotFound,
    NmpSettings,
)
from flywheel_contracts.runtime.nmp.names import DatasetKind, dataset_files_url, dataset_name
from flywheel_contracts.runtime.nmp.testing import RecordingTransport, SentRequest

T = TypeVar("T")

BASE_MODEL = "meta/llama-3.2-1b-instruct"
DEPLOYMENT_NAME = "meta-llama-3.2-1b-instruct"
CONFIG_NAME = "llama-3.2-1b-instruct@v1.0.0+dfw"
JUDGE_MODEL = "meta/llama-3.3-70b-instruct"
EMBEDDING_MODEL = "nvidia/llama-3.2-nv-embedqa-1b-v2"
DEPLOYMENT_STATUSES = {"created", "pending", "running", "completed", "ready"}
DEPLOY_SPEC = NimDeploymentSpec(image_tag="1.8.3", gpus=1, pvc_size="25Gi")
CONFIG_SPEC = CustomizationConfigSpec(target=f"{BASE_MODEL}@2.0", max_seq_length=8192)
POLL_TIMEOUT_S = 30.0


QA = [
    ("What is the capital of France?", "Paris."),
    ("What is two plus two?", "Four."),
    ("Name a primary colour.", "Red."),
]


def _user(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def _assistant(answer: str) -> dict[str, str]:
    return {"role": "assistant", "content": answer}


# Eval records as the datasets service writes them; training rows in chat format.
EVAL_JSONL = "\n".join(
    json.dumps(
        {
            "workload_id": "contract",
            "client_id": "tests",
            "timestamp": 1_700_000_000,
            "request": {"model": BASE_MODEL, "messages": _user(q)},
            "response": {"choices": [{"message": _assistant(a)}]},
        }
    )
    for q, a in QA
).encode()
TRAIN_JSONL = "\n".join(
    json.dumps({"messages": [*_user(q), _assistant(a)]}) for q, a in QA
).encode()


def _unique(kind: DatasetKind) -> str:
    return dataset_name(kind, f"wl{uuid.uuid4().hex[:8]}", 1_700_000_000)


def _one(wire: RecordingTransport, mark: int) -> SentRequest:
    sent = wire.since(mark)
    assert len(sent) == 1, [f"{r.method} {r.url}" for r in sent]
    return sent[0]


def _is(request: SentRequest, method: str, base: str, path: str) -> None:
    assert (request.method, str(request.url)) == (method, base + path)


async def _until(
    fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str
) -> list[T]:
    """Poll until ``done``; every answer seen, the last one done."""
    seen: list[T] = []
    deadline = asyncio.get_running_loop().time() + POLL_TIMEOUT_S
    while True:
        seen.append(await fetch())
        if done(seen[-1]):
            return seen
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not done after {POLL_TIMEOUT_S}s: {seen[-1]!r}")
        await asyncio.sleep(0.02)


async def _repo_with(nmp: NmpClient, files: dict[str, bytes], kind: DatasetKind = "eval") -> str:
    name = _unique(kind)
    await nmp.data_store.create_namespace()
    await nmp.data_store.create_repo(name)
    for path, content in files.items():
        await nmp.data_store.upload_file(name, path, content)
    return name


async def _registered_dataset(nmp: NmpClient, kind: DatasetKind, files: dict[str, bytes]) -> str:
    await nmp.entity_store.create_namespace()
    name = await _repo_with(nmp, files, kind)
    await nmp.entity_store.register_dataset(name)
    return name


async def _serving(nmp: NmpClient, model: str) -> None:
    await _until(nmp.nim.list_models, lambda models: model in models.ids, f"{model} listed")


async def _undeploy(nmp: NmpClient, model: str) -> None:
    with suppress(NmpNotFound):  # the test deleted it itself
        await nmp.deployments.delete(model)


async def _deploy(nmp: NmpClient, teardown: AsyncExitStack, model: str = BASE_MODEL) -> object:
    """M1, with the deployment removed when the test ends."""
    outcome = await nmp.deployments.create(model, DEPLOY_SPEC)
    teardown.push_async_callback(_undeploy, nmp, model)
    return outcome


async def _deployed(nmp: NmpClient, teardown: AsyncExitStack, model: str = BASE_MODEL) -> None:
    await _deploy(nmp, teardown, model)
    await _until(lambda: nmp.deployments.get(model), lambda d: d.status == "ready", "deployment")
    await _serving(nmp, model)


async def _customization_job(nmp: NmpClient, teardown: AsyncExitStack) -> CustomizationJob:
    await _deployed(nmp, teardown)
    train = await _registered_dataset(
        nmp,
        "train",
        {"training/train_data.jsonl": TRAIN_JSONL, "validation/val_data.jsonl": TRAIN_JSONL},
    )
    await nmp.customizer.create_config(BASE_MODEL, CONFIG_SPEC)
    job = await nmp.customizer.create_job(
        workload_id="contract",
        model_name=BASE_MODEL,
        dataset_name=train,
        hyperparameters=Hyperparameters(epochs=2),
    )
    assert isinstance(job, CustomizationJob)
    return job


async def _completed_customization(nmp: NmpClient, teardown: AsyncExitStack) -> CustomizationJob:
    job = await _customization_job(nmp, teardown)
    await _until(
        lambda: nmp.customizer.job_status(job.id),
        lambda s: s.status in {"completed", "failed"},
        "customization",
    )
    return job


def _generic_eval_config(namespace: str, dataset: str) -> dict[str, object]:
    """The generic (llm-as-judge) config of nmp-contract.md §4.4, rubric shortened."""
    return {
        "type": "custom",
        "tasks": {
            "llm-as-judge": {
                "type": "chat-completion",
                "dataset": {
                    "files_url": dataset_files_url(namespace, dataset, "eval_data.jsonl"),
                    "limit": 10,
                },
                "params": {"template": {"messages": "{{ item.request.messages | tojson }}"}},
                "metrics": {
                    "llm-judge": {
                        "type": "llm-judge",
                        "params": {
                            "model": JUDGE_MODEL,
                            "template": {
                                "messages": [
                                    {
                                        "role": "system",
                                        "content": "Score 1-10. Return the integer.",
                                    },
                                    {
                                        "role": "user",
                                        "content": "REFERENCE: {{item.response.choices[0].message.content}}"
                                        " CANDIDATE: {{sample.output_text}}",
                                    },
                                ]
                            },
                            "scores": {
                                "similarity": {
                                    "type": "int",
                                    "parser": {"type": "regex", "pattern": "(\\d)"},
                                }
                            },
                        },
                    }
                },
            }
        },
    }


async def _launched_evaluation(
    nmp: NmpClient, settings: NmpSettings, teardown: AsyncExitStack
) -> str:
    await _deployed(nmp, teardown)
    dataset = await _registered_dataset(nmp, "eval", {"eval_data.jsonl": EVAL_JSONL})
    job = await nmp.evaluator.launch(_generic_eval_config(settings.namespace, dataset), BASE_MODEL)
    assert not isinstance(job, AlreadyExists)
    return job.id


async def _completed_evaluation(
    nmp: NmpClient, settings: NmpSettings, teardown: AsyncExitStack
) -> str:
    job_id = await _launched_evaluation(nmp, settings, teardown)
    await _until(
        lambda: nmp.evaluator.job_status(job_id), lambda s: s.status == "completed", "evaluation"
    )
    return job_id


# --- §4.2 Data Store and Entity Store -----------------------------------------------------------


async def test_d1_entity_store_namespace(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    mark = len(wire.sent)
    assert isinstance(await nmp.entity_store.create_namespace(), Created)
    request = _one(wire, mark)
    _is(request, "POST", settings.nemo_base_url, "/v1/namespaces")
    assert request.json() == {"id": settings.namespace}

    again = await nmp.entity_store.create_namespace()
    assert isinstance(again, AlreadyExists)
    assert again.status_code in {409, 422}


async def test_d2_data_store_namespace_is_form_encoded(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    mark = len(wire.sent)
    assert isinstance(await nmp.data_store.create_namespace(), Created)
    request = _one(wire, mark)
    _is(request, "POST", settings.datastore_base_url, "/v1/datastore/namespaces")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form() == {"namespace": settings.namespace}

    assert isinstance(await nmp.data_store.create_namespace(), AlreadyExists)


async def test_d3_create_repo_tolerates_409(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    await nmp.data_store.create_namespace()
    name = _unique("eval")
    mark = len(wire.sent)
    assert isinstance(await nmp.data_store.create_repo(name), Created)
    request = _one(wire, mark)
    _is(request, "POST", settings.datastore_base_url, "/v1/hf/api/repos/create")
    assert request.json() == {"name": name, "organization": settings.namespace, "type": "dataset"}

    again = await nmp.data_store.create_repo(name)
    assert isinstance(again, AlreadyExists)
    assert again.status_code == 409


async def test_d4_upload_is_preupload_then_ndjson_commit(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    name = await _repo_with(nmp, {})
    ns = settings.namespace
    mark = len(wire.sent)
    commit = await nmp.data_store.upload_file(name, "eval_data.jsonl", EVAL_JSONL)

    preupload, commit_request = wire.since(mark)
    api = f"{settings.datastore_base_url}/v1/hf/api/datasets/{ns}/{name}"
    _is(preupload, "POST", "", f"{api}/preupload/main")
    assert preupload.json() == {
        "files": [
            {
                "path": "eval_data.jsonl",
                "sample": base64.b64encode(EVAL_JSONL[:512]).decode(),
                "size": len(EVAL_JSONL),
            }
        ]
    }
    _is(commit_request, "POST", "", f"{api}/commit/main")
    assert commit_request.headers["content-type"] == "application/x-ndjson"
    header, file_line = commit_request.ndjson()
    assert isinstance(header, dict)
    assert header["key"] == "header"
    assert file_line == {
        "key": "file",
        "value": {
            "content": base64.b64encode(EVAL_JSONL).decode(),
            "path": "eval_data.jsonl",
            "encoding": "base64",
        },
    }
    assert commit.commit_oid
    assert commit.commit_url == ""  # NMP's Data Store links to no commit page


async def test_download_resolves_an_uploaded_file(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    name = await _repo_with(nmp, {"training/train_data.jsonl": TRAIN_JSONL})
    mark = len(wire.sent)
    content = await nmp.data_store.download_file(name, "training/train_data.jsonl")
    path = f"/v1/hf/datasets/{settings.namespace}/{name}/resolve/main/training/train_data.jsonl"
    _is(_one(wire, mark), "GET", settings.datastore_base_url, path)
    assert content == TRAIN_JSONL


async def test_d5_d7_register_creates_an_unknown_dataset(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    await nmp.entity_store.create_namespace()
    name = await _repo_with(nmp, {"eval_data.jsonl": EVAL_JSONL})
    ns = settings.namespace
    mark = len(wire.sent)
    entity = await nmp.entity_store.register_dataset(name)

    lookup, create = wire.since(mark)
    _is(lookup, "GET", settings.nemo_base_url, f"/v1/datasets/{ns}/{name}")
    _is(create, "POST", settings.nemo_base_url, "/v1/datasets")
    assert create.json() == {
        "name": name,
        "namespace": ns,
        "description": "",
        "files_url": f"hf://datasets/{ns}/{name}",
        "project": "flywheel",
    }
    assert entity.files_url == f"hf://datasets/{ns}/{name}"


async def test_d6_register_updates_a_known_dataset(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    name = await _registered_dataset(nmp, "train", {"training/train_data.jsonl": TRAIN_JSONL})
    ns = settings.namespace
    mark = len(wire.sent)
    entity = await nmp.entity_store.register_dataset(name, description="validation added")

    lookup, update = wire.since(mark)
    _is(lookup, "GET", settings.nemo_base_url, f"/v1/datasets/{ns}/{name}")
    _is(update, "PATCH", settings.nemo_base_url, f"/v1/datasets/{ns}/{name}")
    assert update.json() == {
        "description": "validation added",
        "files_url": f"hf://datasets/{ns}/{name}",
        "project": "flywheel",
    }
    assert entity.files_url == f"hf://datasets/{ns}/{name}"


async def test_d8_files_url_of_a_registered_dataset(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    name = await _registered_dataset(nmp, "eval", {"eval_data.jsonl": EVAL_JSONL})
    mark = len(wire.sent)
    files_url = await nmp.entity_store.dataset_files_url(name)
    _is(
        _one(wire, mark), "GET", settings.nemo_base_url, f"/v1/datasets/{settings.namespace}/{name}"
    )
    assert files_url == f"hf://datasets/{settings.namespace}/{name}"


async def test_d9_delete_repo(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    name = await _repo_with(nmp, {"eval_data.jsonl": EVAL_JSONL})
    mark = len(wire.sent)
    await nmp.data_store.delete_repo(name)
    request = _one(wire, mark)
    _is(request, "DELETE", settings.datastore_base_url, "/v1/hf/api/repos/delete")
    assert request.json() == {"name": name, "organization": settings.namespace, "type": "dataset"}

    with pytest.raises(NmpNotFound):
        await nmp.data_store.download_file(name, "eval_data.jsonl")


async def test_d10_unregister_dataset(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    name = await _registered_dataset(nmp, "eval", {"eval_data.jsonl": EVAL_JSONL})
    mark = len(wire.sent)
    await nmp.entity_store.delete_dataset(name)
    path = f"/v1/datasets/{settings.namespace}/{name}"
    _is(_one(wire, mark), "DELETE", settings.nemo_base_url, path)

    with pytest.raises(NmpNotFound):
        await nmp.entity_store.get_dataset(name)


# --- §4.3 Customizer --------------------------------------------------------------------------


async def test_c1_create_config_and_409_already_exists(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    mark = len(wire.sent)
    assert isinstance(await nmp.customizer.create_config(BASE_MODEL, CONFIG_SPEC), Created)
    request = _one(wire, mark)
    _is(request, "POST", settings.nemo_base_url, "/v1/customization/configs")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "name": CONFIG_NAME,
        "namespace": settings.namespace,
        "target": "meta/llama-3.2-1b-instruct@2.0",
        "training_options": [
            {
                "training_type": "sft",
                "finetuning_type": "lora",
                "num_gpus": 1,
                "num_nodes": 1,
                "tensor_parallel_size": 1,
                "data_parallel_size": 1,
                "use_sequence_parallel": False,
                "micro_batch_size": 1,
            }
        ],
        "training_precision": "bf16-mixed",
        "max_seq_length": 8192,
    }

    again = await nmp.customizer.create_config(BASE_MODEL, CONFIG_SPEC)
    assert isinstance(again, AlreadyExists)
    assert again.status_code == 409


async def test_c2_create_job(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    mark = len(wire.sent)
    job = await _customization_job(nmp, teardown)
    ns = settings.namespace
    request = wire.since(mark)[-1]
    _is(request, "POST", settings.nemo_base_url, "/v1/customization/jobs")
    body = request.json()
    assert isinstance(body, dict)
    train = body["dataset"]["name"]
    assert body == {
        "name": f"customization-contract-{BASE_MODEL}",
        "namespace": ns,
        "output_model": f"{ns}/customized-{DEPLOYMENT_NAME}",
        "config": f"{ns}/{CONFIG_NAME}",
        "dataset": {"name": train, "namespace": ns},
        "hyperparameters": {
            "training_type": "sft",
            "finetuning_type": "lora",
            "epochs": 2,
            "batch_size": 16,
            "learning_rate": 0.0001,
            "lora": {"adapter_dim": 32, "adapter_dropout": 0.1},
        },
    }
    assert job.id
    assert job.output_model is not None
    assert job.output_model.startswith(f"{ns}/customized-{DEPLOYMENT_NAME}@")


async def test_c3_job_status_until_completed(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    job = await _customization_job(nmp, teardown)
    mark = len(wire.sent)
    seen = await _until(
        lambda: nmp.customizer.job_status(job.id),
        lambda s: s.status not in {"created", "pending", "running"},
        "customization",
    )
    for request in wire.since(mark):
        _is(request, "GET", settings.nemo_base_url, f"/v1/customization/jobs/{job.id}/status")
    final = seen[-1]
    assert final.status == "completed", final.error_detail
    assert final.percentage_done == 100
    assert final.epochs_completed == 2
    assert (final.steps_completed or 0) > 0
    progress = [s.percentage_done or 0.0 for s in seen]
    assert progress == sorted(progress)


async def test_c4_c5_model_info_and_delete(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    job = await _completed_customization(nmp, teardown)
    assert job.output_model is not None
    # The id keeps its '/' and '@' in the path, as NMP expects.
    path = f"/v1/models/{job.output_model}"
    mark = len(wire.sent)
    await nmp.entity_store.get_model(job.output_model)
    _is(_one(wire, mark), "GET", settings.nemo_base_url, path)

    mark = len(wire.sent)
    await nmp.entity_store.delete_model(job.output_model)
    _is(_one(wire, mark), "DELETE", settings.nemo_base_url, path)
    with pytest.raises(NmpNotFound):
        await nmp.entity_store.get_model(job.output_model)


async def test_c6_delete_config(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings
) -> None:
    await nmp.customizer.create_config(BASE_MODEL, CONFIG_SPEC)
    mark = len(wire.sent)
    await nmp.customizer.delete_config(BASE_MODEL)
    path = f"/v1/customization/configs/{settings.namespace}/{CONFIG_NAME}"
    _is(_one(wire, mark), "DELETE", settings.nemo_base_url, path)
    # Gone: creating it again is a fresh create, not "already exists".
    assert isinstance(await nmp.customizer.create_config(BASE_MODEL, CONFIG_SPEC), Created)


async def test_c7_cancel_job_path(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    job = await _customization_job(nmp, teardown)
    mark = len(wire.sent)
    await nmp.customizer.cancel_job(job.id)
    request = _one(wire, mark)
    _is(request, "POST", settings.nemo_base_url, f"/v1/customization/jobs/{job.id}/cancel")
    assert request.content == b""


async def test_c8_model_sync_lists_the_customized_model(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    job = await _completed_customization(nmp, teardown)
    assert job.output_model is not None
    mark = len(wire.sent)
    await _serving(nmp, job.output_model)
    for request in wire.since(mark):
        _is(request, "GET", settings.nim_base_url, "/v1/models")


# --- §4.4 Evaluator ---------------------------------------------------------------------------


async def test_e1_launch(
    nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings, teardown: AsyncExitStack
) -> None:
    mark = len(wire.sent)
    job_id = await _launched_evaluation(nmp, settings, teardown)
    request = wire.since(mark)[-1]
    _is(request, "POST", settings.nemo_base_url, "/v1/evaluation/jobs")
    body = request.json()
    assert isinstance(body, dict)
    assert body["target"] == {"type": "model", "model": BASE_MODEL}
    assert body["namespace"] == settings.namespace
    task = body["config"]["tasks"]["llm-as-judge"]
    assert task["dataset"]["files_url"].startswith(f"hf://datasets/{settings.namespace}/")
    assert task["dataset"]["files_url"].endswith("/eval_data.jsonl")
    assert job_id


async def test_e2_status_goes_created_running_completed(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    job_id = await _launched_evaluation(nmp, settings, teardown)
    mark = len(wire.sent)
    seen = await _until(
        lambda: nmp.evaluator.job_status(job_id),
        lambda s: s.status not in {"created", "pending", "running"},
        "evaluation",
    )
    for request in wire.since(mark):
        _is(request, "GET", settings.nemo_base_url, f"/v1/evaluation/jobs/{job_id}")
    assert seen[-1].status == "completed"
    assert seen[-1].progress == 100
    progress = [s.progress for s in seen]
    assert progress == sorted(progress)


async def test_e3_results_carry_the_judge_score(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    job_id = await _completed_evaluation(nmp, settings, teardown)
    mark = len(wire.sent)
    results = await nmp.evaluator.results(job_id)
    _is(_one(wire, mark), "GET", settings.nemo_base_url, f"/v1/evaluation/jobs/{job_id}/results")
    similarity = results.score("llm-as-judge", "llm-judge", "similarity")
    assert 0 <= similarity <= 10


async def test_e4_delete_job(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    job_id = await _completed_evaluation(nmp, settings, teardown)
    mark = len(wire.sent)
    await nmp.evaluator.delete_job(job_id)
    request = _one(wire, mark)
    _is(request, "DELETE", settings.nemo_base_url, f"/v1/evaluation/jobs/{job_id}")
    assert request.headers["accept"] == "application/json"
    with pytest.raises(NmpNotFound):
        await nmp.evaluator.job_status(job_id)


async def test_e5_download_results_zip(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    job_id = await _completed_evaluation(nmp, settings, teardown)
    mark = len(wire.sent)
    archive = await nmp.evaluator.download_results(job_id)
    path = f"/v1/evaluation/jobs/{job_id}/download-results"
    _is(_one(wire, mark), "GET", settings.nemo_base_url, path)
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        assert "results.json" in {n.rsplit("/", 1)[-1] for n in zipped.namelist()}


# --- §4.5 Deployment Management ---------------------------------------------------------------


async def test_m1_deploy_and_already_exists(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    mark = len(wire.sent)
    assert isinstance(await _deploy(nmp, teardown), Created)
    request = _one(wire, mark)
    _is(request, "POST", settings.nemo_base_url, "/v1/deployment/model-deployments")
    assert request.json() == {
        "name": DEPLOYMENT_NAME,
        "namespace": settings.namespace,
        "config": {
            "model": BASE_MODEL,
            "nim_deployment": {
                "image_name": f"nvcr.io/nim/{BASE_MODEL}",
                "image_tag": "1.8.3",
                "pvc_size": "25Gi",
                "gpu": 1,
                "additional_envs": {"NIM_GUIDED_DECODING_BACKEND": "outlines"},
            },
        },
    }

    mark = len(wire.sent)
    again = await _deploy(nmp, teardown)
    assert isinstance(again, AlreadyExists)
    assert len(wire.since(mark)) == 1, "an existing deployment must not be retried"


async def test_m1_to_m3_under_a_caller_given_name(
    nmp: NmpClient, wire: RecordingTransport, teardown: AsyncExitStack
) -> None:
    name = "fw-run-1-llama"
    mark = len(wire.sent)
    assert isinstance(await nmp.deployments.create(BASE_MODEL, DEPLOY_SPEC, name=name), Created)
    teardown.push_async_callback(nmp.deployments.delete, name)

    body = _one(wire, mark).json()
    assert isinstance(body, dict)
    assert (body["name"], body["config"]["model"]) == (name, BASE_MODEL)
    assert (await nmp.deployments.get(name)).status in {"pending", "ready"}


async def test_m2_status_until_ready(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    await _deploy(nmp, teardown)
    mark = len(wire.sent)
    seen = await _until(
        lambda: nmp.deployments.get(BASE_MODEL), lambda d: d.status == "ready", "deployment"
    )
    path = f"/v1/deployment/model-deployments/{settings.namespace}/{DEPLOYMENT_NAME}"
    for request in wire.since(mark):
        _is(request, "GET", settings.nemo_base_url, path)
    assert {d.status for d in seen} <= DEPLOYMENT_STATUSES


async def test_m3_delete_reads_a_json_body(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    await _deployed(nmp, teardown)
    mark = len(wire.sent)
    receipt = await nmp.deployments.delete(BASE_MODEL)
    path = f"/v1/deployment/model-deployments/{settings.namespace}/{DEPLOYMENT_NAME}"
    _is(_one(wire, mark), "DELETE", settings.nemo_base_url, path)
    assert receipt.model_extra is not None
    with pytest.raises(NmpNotFound):
        await nmp.deployments.get(BASE_MODEL)


async def test_m4_model_sync_lists_the_deployed_model(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    await _deploy(nmp, teardown)
    await _until(lambda: nmp.deployments.get(BASE_MODEL), lambda d: d.status == "ready", "ready")
    mark = len(wire.sent)
    await _serving(nmp, BASE_MODEL)
    for request in wire.since(mark):
        _is(request, "GET", settings.nim_base_url, "/v1/models")


# --- §4.6 embeddings and the NIM proxy's chat ---------------------------------------------------


async def test_embeddings(nmp: NmpClient, wire: RecordingTransport, settings: NmpSettings) -> None:
    await _serving(nmp, EMBEDDING_MODEL)
    mark = len(wire.sent)
    vectors = await nmp.nim.embeddings(["first query", "second query"])
    request = _one(wire, mark)
    _is(request, "POST", settings.nim_base_url, "/v1/embeddings")
    assert request.headers["accept"] == "application/json"
    assert request.json() == {
        "model": EMBEDDING_MODEL,
        "input": ["first query", "second query"],
        "input_type": "query",
    }
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) == 2048
    assert vectors[0] != vectors[1]


async def test_chat_completions_on_a_deployed_model(
    nmp: NmpClient,
    wire: RecordingTransport,
    settings: NmpSettings,
    teardown: AsyncExitStack,
) -> None:
    await _deployed(nmp, teardown)
    messages = _user(QA[0][0])
    mark = len(wire.sent)
    completion = await nmp.nim.chat_completions(BASE_MODEL, messages, max_tokens=32)
    request = _one(wire, mark)
    _is(request, "POST", settings.nim_base_url, "/v1/chat/completions")
    assert request.json() == {"model": BASE_MODEL, "messages": messages, "max_tokens": 32}
    assert isinstance(completion.choices[0].message.content, str)
    assert completion.choices[0].message.role == "assistant"

    await nmp.deployments.delete(BASE_MODEL)
