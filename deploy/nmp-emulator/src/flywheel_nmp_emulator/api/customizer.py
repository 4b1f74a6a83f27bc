"""Customizer (nemo host): customization configs and LoRA jobs that take GPUs to train.

Shapes follow the official SDK (nemo-microservices 1.5.0): requests ``ConfigCreateParams`` /
``customization.JobCreateParams``, answers ``CustomizationConfig`` / ``CustomizationJob`` /
``CustomizationStatusDetails``, lists ``SyncDefaultPagination``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict

from flywheel_nmp_emulator.api.deps import FreshEmulator, conflict, not_found
from flywheel_nmp_emulator.api.listing import ListQueryDep, paginate
from flywheel_nmp_emulator.api.schemas import (
    DEFAULT_NAMESPACE,
    Ownership,
    StrictBody,
    WandBIntegration,
    dump_optional,
    split_ref,
)
from flywheel_nmp_emulator.ids import iso, new_id
from flywheel_nmp_emulator.jobs import customization
from flywheel_nmp_emulator.jobs.files import DatasetFileError, parse_files_url, repo_key
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import (
    CustomizationConfig,
    CustomizationJob,
    CustomizedModel,
    RealTraining,
)

router = APIRouter(tags=["customizer"])

FinetuningType = Literal["lora", "lora_merged", "all_weights"]
TrainingType = Literal["dpo", "sft", "distillation", "grpo"]
Precision = Literal["int8", "bf16", "fp16", "fp32", "fp8-mixed", "bf16-mixed"]


class TrainingOption(StrictBody):
    """SDK ``CustomizationTrainingOptionParam``."""

    training_type: TrainingType
    finetuning_type: FinetuningType
    num_gpus: int
    micro_batch_size: int
    num_nodes: int | None = None
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    expert_model_parallel_size: int | None = None
    data_parallel_size: int | None = None
    use_sequence_parallel: bool | None = None


class ConfigRequest(StrictBody):
    """SDK ``customization.ConfigCreateParams`` (also an inline job config)."""

    max_seq_length: int
    training_options: list[TrainingOption]
    chat_prompt_template: str | None = None
    custom_fields: dict[str, Any] | None = None
    dataset_schemas: list[dict[str, Any]] | None = None
    description: str | None = None
    name: str | None = None
    namespace: str | None = None
    ownership: Ownership | None = None
    pod_spec: dict[str, Any] | None = None
    project: str | None = None
    prompt_template: str | None = None
    # A target reference ("meta/llama-3.2-1b-instruct@2.0") or an inline target object.
    target: str | dict[str, Any] | None = None
    training_precision: Precision | None = None


class DatasetRef(StrictBody):
    """SDK ``customization.DatasetCuParamParam``."""

    name: str | None = None
    namespace: str | None = None
    files_url: str | None = None


class Hyperparameters(BaseModel):
    """SDK ``HyperparametersParam``: finetuning_type is required; the nested parameter objects
    (lora, sft, dpo, ...) pass through unchecked."""

    model_config = ConfigDict(extra="allow")

    finetuning_type: FinetuningType
    training_type: TrainingType | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None


class JobRequest(StrictBody):
    """SDK ``customization.JobCreateParams`` (``wandb-api-key`` is a header there, not a field)."""

    config: str | ConfigRequest
    dataset: str | DatasetRef
    hyperparameters: Hyperparameters
    custom_fields: dict[str, str] | None = None
    dataset_parameters: dict[str, Any] | None = None
    description: str | None = None
    integrations: list[WandBIntegration] | None = None
    name: str | None = None
    namespace: str | None = None
    output_model: str | None = None
    ownership: Ownership | None = None
    project: str | None = None


# Optional request fields a job answer echoes back as sent.
ECHOED = (
    "custom_fields",
    "dataset_parameters",
    "description",
    "integrations",
    "ownership",
    "project",
)


def _target_model(target: str | dict[str, Any] | None) -> str:
    """The base model a config trains: 'meta/llama-3.2-1b-instruct@2.0' -> the part before '@';
    an inline target names it in base_model (else namespace/name)."""
    if isinstance(target, dict):
        base = target.get("base_model")
        if not isinstance(base, str) or not base:
            base = f"{target.get('namespace', '')}/{target.get('name', '')}".strip("/")
        return base.split("@", 1)[0]
    return (target or "").split("@", 1)[0]


def _gpus(options: list[dict[str, Any]]) -> int:
    first = options[0] if options else {}
    return int(first.get("num_gpus") or 1) * int(first.get("num_nodes") or 1)


def _config_view(cfg: CustomizationConfig) -> dict[str, Any]:
    """SDK ``CustomizationConfig``."""
    return {
        **cfg.body,
        "name": cfg.name,
        "namespace": cfg.namespace,
        "created_at": iso(cfg.created_at),
        "updated_at": iso(cfg.created_at),
    }


def status_view(job: CustomizationJob, now: float) -> dict[str, Any]:
    """SDK ``CustomizationStatusDetails``."""
    fraction = customization.progress(job, now)
    if job.status == "running":
        # The training time may be up before the state machine marks the job completed: until
        # it does, the job is not done, and only a completed job reports 100%.
        fraction = min(fraction, 0.999)
    view: dict[str, Any] = {
        "status": job.status,
        "created_at": iso(job.created_at),
        "updated_at": iso(_updated_at(job)),
        "percentage_done": math.floor(1000 * fraction) / 10,
        "epochs_completed": math.floor(fraction * job.epochs),
        "steps_completed": math.floor(fraction * job.epochs * job.steps_per_epoch),
        "steps_per_epoch": job.steps_per_epoch,
        "status_logs": [
            {"updated_at": iso(log.updated_at), "message": log.message, "detail": log.detail}
            for log in job.status_logs
        ],
    }
    if job.real is not None:
        view.update(_real_training_view(job.real, job, now))
    return view


def _real_training_view(real: RealTraining, job: CustomizationJob, now: float) -> dict[str, Any]:
    """What a real trainer reported, in the SDK's fields: the steps and epochs it really did
    (a capped plan covers fewer than were asked for), its last loss and the loss of every step
    (`metrics.metrics.train_loss`: the training curve)."""
    end = job.finished_at if job.finished_at is not None else now
    view: dict[str, Any] = {
        "epochs_completed": math.floor(real.epochs_done),
        "steps_completed": real.steps_done,
        "steps_per_epoch": real.steps_per_epoch,
        "elapsed_time": round(end - job.started_at, 3) if job.started_at is not None else None,
        "metrics": {
            "keys": ["train_loss"],
            "metrics": {
                "train_loss": [
                    {"step": point.step, "value": point.value, "timestamp": iso(point.at)}
                    for point in real.losses
                ]
            },
        },
    }
    if real.losses:
        view["train_loss"] = real.losses[-1].value
    return view


def _updated_at(job: CustomizationJob) -> float:
    return job.status_logs[-1].updated_at if job.status_logs else job.created_at


def _job_view(job: CustomizationJob, now: float) -> dict[str, Any]:
    """SDK ``CustomizationJob``: exactly its fields (it has no ``name``)."""
    return {
        "id": job.id,
        "namespace": job.namespace,
        "config": job.echo.get("config", job.config),
        "dataset": job.echo.get(
            "dataset", {"name": job.dataset_name, "namespace": job.dataset_namespace}
        ),
        "hyperparameters": job.hyperparameters,
        "output_model": job.output_model or None,
        "status": job.status,
        "status_details": status_view(job, now),
        "created_at": iso(job.created_at),
        "updated_at": iso(_updated_at(job)),
        **{field: job.echo.get(field) for field in ECHOED},
    }


def _job(emu: Emulator, job_id: str) -> CustomizationJob:
    job = emu.state.customization_jobs.get(job_id)
    if job is None:
        raise not_found(f"customization job {job_id}")
    return job


def _resolve_config(emu: Emulator, config: str | ConfigRequest) -> tuple[str, str, int]:
    """(config reference, base model, GPUs) of a stored config named 'ns/name' or an inline one."""
    if isinstance(config, str):
        namespace, name = split_ref(config, "config")
        cfg = emu.state.customization_configs.get(f"{namespace}/{name}")
        if cfg is None:
            raise not_found(f"customization config {config}")
        options = cfg.body.get("training_options") or []
        return config, _target_model(cfg.body.get("target", cfg.target)), _gpus(options)
    body = config.model_dump(mode="json", exclude_none=True)
    ref = f"{config.namespace or DEFAULT_NAMESPACE}/{config.name or 'inline'}"
    return ref, _target_model(config.target), _gpus(body["training_options"])


def _resolve_dataset(dataset: str | DatasetRef, namespace: str) -> tuple[str, str]:
    """(namespace, name) of the training dataset: 'ns/name', or an object with name/namespace
    or an hf://datasets/ns/name files_url."""
    if isinstance(dataset, str):
        return split_ref(dataset, "dataset")
    if dataset.files_url:
        try:
            ds_namespace, name, _ = parse_files_url(dataset.files_url)
        except DatasetFileError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return ds_namespace, name
    if not dataset.name:
        raise HTTPException(status_code=422, detail="dataset needs a name or a files_url")
    return dataset.namespace or namespace, dataset.name


def _check_unique_name(emu: Emulator, namespace: str, name: str) -> None:
    taken = any(
        j.namespace == namespace and j.name == name for j in emu.state.customization_jobs.values()
    )
    if taken:
        raise conflict(f"customization job {namespace}/{name}")


@router.post("/v1/customization/configs")
async def create_config(body: ConfigRequest, emu: FreshEmulator) -> dict[str, Any]:
    namespace = body.namespace or DEFAULT_NAMESPACE
    name = body.name or new_id("customization_config")
    key = f"{namespace}/{name}"
    if key in emu.state.customization_configs:
        raise conflict(f"customization config {key}")
    cfg = CustomizationConfig(
        name=name,
        namespace=namespace,
        target=_target_model(body.target),
        body=body.model_dump(mode="json", exclude_none=True),
        created_at=emu.clock(),
    )
    emu.state.customization_configs[key] = cfg
    emu.store.commit()
    return _config_view(cfg)


@router.get("/v1/customization/configs")
async def list_configs(query: ListQueryDep, emu: FreshEmulator) -> dict[str, Any]:
    return paginate(
        list(emu.state.customization_configs.values()),
        query,
        _config_view,
        filters={
            "namespace": lambda c: c.namespace,
            "name": lambda c: c.name,
            "target_base_model": lambda c: c.target,
        },
        sorts={
            "created_at": lambda c: c.created_at,
            "updated_at": lambda c: c.created_at,
            "name": lambda c: c.name,
        },
    )


@router.get("/v1/customization/configs/{namespace}/{name}")
async def get_config(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
    cfg = emu.state.customization_configs.get(f"{namespace}/{name}")
    if cfg is None:
        raise not_found(f"customization config {namespace}/{name}")
    return _config_view(cfg)


@router.delete("/v1/customization/configs/{namespace}/{name}")
async def delete_config(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
    if emu.state.customization_configs.pop(f"{namespace}/{name}", None) is None:
        raise not_found(f"customization config {namespace}/{name}")
    emu.store.commit()
    return {"message": f"customization config {namespace}/{name} deleted"}


@router.post("/v1/customization/jobs")
async def create_job(body: JobRequest, emu: FreshEmulator) -> dict[str, Any]:
    namespace = body.namespace or DEFAULT_NAMESPACE
    config_ref, base, gpus = _resolve_config(emu, body.config)
    if not base:
        raise HTTPException(status_code=422, detail="the customization config names no target")
    ds_namespace, ds_name = _resolve_dataset(body.dataset, namespace)
    if repo_key(ds_namespace, ds_name) not in emu.state.repos:
        raise not_found(f"dataset {ds_namespace}/{ds_name}")
    job_id = new_id("cust")
    name = body.name or job_id
    _check_unique_name(emu, namespace, name)
    hyperparameters = body.hyperparameters.model_dump(mode="json", exclude_unset=True)
    now = emu.clock()
    job = CustomizationJob(
        id=job_id,
        name=name,
        namespace=namespace,
        config=config_ref,
        base_model=base,
        # NMP appends the job id so every run produces a distinct model; without an
        # output_model no model entity is created (SDK: "only the artifact files written").
        output_model=f"{body.output_model}@{job_id}" if body.output_model else "",
        dataset_namespace=ds_namespace,
        dataset_name=ds_name,
        hyperparameters=hyperparameters,
        gpus=gpus,
        epochs=max(int(body.hyperparameters.epochs or 1), 1),
        created_at=now,
        echo={
            "config": body.model_dump(mode="json", include={"config"}, exclude_none=True)["config"],
            "dataset": body.model_dump(mode="json", include={"dataset"}, exclude_none=True)[
                "dataset"
            ],
            **dump_optional(body, ECHOED),
        },
    )
    emu.state.customization_jobs[job_id] = job
    if job.output_model:
        _register_output_model(emu, job, now)
    emu.gpus.request(customization.holder(job), gpus, now)
    emu.store.record("customization", job_id, "requested", f"{gpus} GPU(s)")
    emu.store.commit()
    return _job_view(job, now)


def _register_output_model(emu: Emulator, job: CustomizationJob, now: float) -> None:
    model_ns, _, model_name = job.output_model.partition("/")
    emu.state.models[job.output_model] = CustomizedModel(
        id=job.output_model,
        namespace=model_ns,
        name=model_name,
        base_model=job.base_model,
        job_id=job.id,
        created_at=now,
    )


@router.get("/v1/customization/jobs")
async def list_jobs(query: ListQueryDep, emu: FreshEmulator) -> dict[str, Any]:
    now = emu.clock()
    return paginate(
        list(emu.state.customization_jobs.values()),
        query,
        lambda job: _job_view(job, now),
        filters={
            "namespace": lambda j: j.namespace,
            "status": lambda j: j.status,
            "project": lambda j: j.echo.get("project"),
            "base_model": lambda j: j.base_model,
            "dataset": lambda j: f"hf://datasets/{j.dataset_namespace}/{j.dataset_name}",
            "finetuning_type": lambda j: j.hyperparameters.get("finetuning_type"),
            "training_type": lambda j: j.hyperparameters.get("training_type"),
            "epochs": lambda j: j.hyperparameters.get("epochs"),
            "batch_size": lambda j: j.hyperparameters.get("batch_size"),
        },
        sorts={"created_at": lambda j: j.created_at},
    )


@router.get("/v1/customization/jobs/{job_id}")
async def get_job(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    return _job_view(_job(emu, job_id), emu.clock())


@router.get("/v1/customization/jobs/{job_id}/status")
async def get_job_status(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    return status_view(_job(emu, job_id), emu.clock())


# NMP's (and the SDK's) only cancel path. The blueprint's /v1/customizations/{id}/cancel does
# not exist on NMP, so it is not served here either (404).
@router.post("/v1/customization/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    """The whole job (SDK: ``cancel() -> CustomizationJob``), now ``cancelled`` with its GPUs
    released. Idempotent: a finished job is answered unchanged, so a janitor can reclaim
    blindly."""
    job = _job(emu, job_id)
    now = emu.clock()
    customization.cancel(emu, job, now)
    emu.store.commit()
    return _job_view(job, now)
