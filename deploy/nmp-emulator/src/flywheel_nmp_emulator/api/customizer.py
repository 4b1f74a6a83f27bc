"""Customizer (nemo host): customization configs and LoRA jobs that take GPUs to train."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from flywheel_nmp_emulator.api.deps import FreshEmulator, conflict, not_found
from flywheel_nmp_emulator.ids import iso, new_id
from flywheel_nmp_emulator.jobs import customization
from flywheel_nmp_emulator.jobs.files import repo_key
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import (
    CustomizationConfig,
    CustomizationJob,
    CustomizedModel,
)

router = APIRouter(tags=["customizer"])


class ConfigRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    namespace: str
    target: str
    training_options: list[dict[str, Any]] = Field(default_factory=list)


class DatasetRef(BaseModel):
    name: str
    namespace: str


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    config: str
    dataset: DatasetRef
    name: str = ""
    namespace: str | None = None
    output_model: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


def _base_model(target: str) -> str:
    """'meta/llama-3.2-1b-instruct@2.0' -> 'meta/llama-3.2-1b-instruct'."""
    return target.split("@", 1)[0]


def _config_view(cfg: CustomizationConfig) -> dict[str, Any]:
    return {**cfg.body, "id": f"{cfg.namespace}/{cfg.name}", "created_at": iso(cfg.created_at)}


def status_view(job: CustomizationJob, now: float) -> dict[str, Any]:
    fraction = customization.progress(job, now)
    return {
        "id": job.id,
        "status": job.status,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.status_logs[-1].updated_at if job.status_logs else job.created_at),
        "percentage_done": round(100 * fraction, 1),
        "epochs_completed": math.floor(fraction * job.epochs),
        "steps_completed": math.floor(fraction * job.epochs * job.steps_per_epoch),
        "steps_per_epoch": job.steps_per_epoch,
        "status_logs": [
            {"updated_at": iso(log.updated_at), "message": log.message, "detail": log.detail}
            for log in job.status_logs
        ],
    }


def _job_view(job: CustomizationJob, now: float) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "namespace": job.namespace,
        "config": job.config,
        "dataset": {"name": job.dataset_name, "namespace": job.dataset_namespace},
        "hyperparameters": job.hyperparameters,
        "output_model": job.output_model,
        "status": job.status,
        "created_at": iso(job.created_at),
        "status_details": status_view(job, now),
    }


def _job(emu: Emulator, job_id: str) -> CustomizationJob:
    job = emu.state.customization_jobs.get(job_id)
    if job is None:
        raise not_found(f"customization job {job_id}")
    return job


@router.post("/v1/customization/configs")
async def create_config(body: ConfigRequest, emu: FreshEmulator) -> dict[str, Any]:
    key = f"{body.namespace}/{body.name}"
    if key in emu.state.customization_configs:
        raise conflict(f"customization config {key}")
    cfg = CustomizationConfig(
        name=body.name,
        namespace=body.namespace,
        target=body.target,
        body=body.model_dump(),
        created_at=emu.clock(),
    )
    emu.state.customization_configs[key] = cfg
    emu.store.commit()
    return _config_view(cfg)


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
    cfg = emu.state.customization_configs.get(body.config)
    if cfg is None:
        raise not_found(f"customization config {body.config}")
    if repo_key(body.dataset.namespace, body.dataset.name) not in emu.state.repos:
        raise not_found(f"dataset {body.dataset.namespace}/{body.dataset.name}")
    options = cfg.body.get("training_options") or [{}]
    gpus = int(options[0].get("num_gpus") or 1) * int(options[0].get("num_nodes") or 1)
    base = _base_model(cfg.target)
    namespace = body.namespace or cfg.namespace
    job_id = new_id("cust")
    requested = body.output_model or f"{namespace}/customized-{base.replace('/', '-')}"
    now = emu.clock()
    job = CustomizationJob(
        id=job_id,
        name=body.name or f"customization-{job_id}",
        namespace=namespace,
        config=body.config,
        base_model=base,
        # NMP appends the job id so every run produces a distinct model.
        output_model=f"{requested}@{job_id}",
        dataset_namespace=body.dataset.namespace,
        dataset_name=body.dataset.name,
        hyperparameters=body.hyperparameters,
        gpus=gpus,
        epochs=max(int(body.hyperparameters.get("epochs") or 1), 1),
        created_at=now,
    )
    model_ns, _, model_name = job.output_model.partition("/")
    emu.state.customization_jobs[job_id] = job
    emu.state.models[job.output_model] = CustomizedModel(
        id=job.output_model,
        namespace=model_ns,
        name=model_name,
        base_model=base,
        job_id=job_id,
        created_at=now,
    )
    emu.gpus.request(customization.holder(job), gpus, now)
    emu.store.record("customization", job_id, "requested", f"{gpus} GPU(s)")
    emu.store.commit()
    return _job_view(job, now)


@router.get("/v1/customization/jobs")
async def list_jobs(emu: FreshEmulator) -> dict[str, Any]:
    now = emu.clock()
    return {
        "object": "list",
        "data": [_job_view(j, now) for j in emu.state.customization_jobs.values()],
    }


@router.get("/v1/customization/jobs/{job_id}")
async def get_job(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    return _job_view(_job(emu, job_id), emu.clock())


@router.get("/v1/customization/jobs/{job_id}/status")
async def get_job_status(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    return status_view(_job(emu, job_id), emu.clock())


# The blueprint cancels at /v1/customizations/{id}/cancel (sic); NMP's documented path is
# /v1/customization/jobs/{id}/cancel. Both work, so either client style runs here.
@router.post("/v1/customizations/{job_id}/cancel")
@router.post("/v1/customization/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    """Idempotent: cancelling a finished job answers its status unchanged, so a janitor can
    reclaim blindly."""
    job = _job(emu, job_id)
    now = emu.clock()
    customization.cancel(emu, job, now)
    emu.store.commit()
    return status_view(job, now)
