"""Deployment Management (nemo host): NIM deployments that take GPUs from the inventory.

Shapes follow the official SDK (nemo-microservices 1.5.0): requests
``deployment.ModelDeploymentCreateParams``, answers ``deployment.ModelDeployment`` (status in
the SDK's ``JobStatus`` literal: the emulator reports pending, ready, failed) and
``shared.DeleteResponse``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from flywheel_nmp_emulator.api.deps import FreshEmulator, json_response, not_found
from flywheel_nmp_emulator.api.listing import ListQueryDep, paginate
from flywheel_nmp_emulator.api.schemas import (
    DEFAULT_NAMESPACE,
    Ownership,
    StrictBody,
    delete_response,
    dump_optional,
    split_ref,
)
from flywheel_nmp_emulator.ids import iso, new_id
from flywheel_nmp_emulator.jobs.deployments import holder
from flywheel_nmp_emulator.state.records import Deployment

router = APIRouter(tags=["deployment management"])

ALREADY_EXISTS = "model deployment already exists"


class NimDeployment(StrictBody):
    """SDK ``NIMDeploymentConfigParam``: gpu, image_name and image_tag are required."""

    gpu: int = Field(ge=0)
    image_name: str
    image_tag: str
    additional_envs: dict[str, str] | None = None
    disable_lora_support: bool | None = None
    namespace: str | None = None
    pvc_size: str | None = None


class ModelObject(BaseModel):
    """SDK ``ModelDeParam``: an inline model entity; it is served under namespace/name."""

    model_config = ConfigDict(extra="allow")

    name: str
    namespace: str | None = None


class DeploymentConfig(StrictBody):
    """SDK ``DeploymentConfigParam``."""

    model: str | ModelObject | None = None
    nim_deployment: NimDeployment | None = None
    external_endpoint: dict[str, Any] | None = None
    custom_fields: dict[str, Any] | None = None
    description: str | None = None
    name: str | None = None
    namespace: str | None = None
    ownership: Ownership | None = None
    project: str | None = None


class DeploymentRequest(StrictBody):
    """SDK ``deployment.ModelDeploymentCreateParams``; ``config`` may also reference a stored
    deployment config as "ns/name" (the emulator stores none, so such a reference is 404)."""

    config: str | DeploymentConfig
    async_enabled: bool | None = None
    custom_fields: dict[str, Any] | None = None
    description: str | None = None
    hf_token: str | None = None
    models: list[str] | None = None
    name: str | None = None
    namespace: str | None = None
    ownership: Ownership | None = None
    project: str | None = None


# hf_token is a secret: accepted, never echoed.
ECHOED = ("async_enabled", "custom_fields", "description", "models", "ownership", "project")


def _model_id(config: DeploymentConfig) -> str:
    if isinstance(config.model, ModelObject):
        return f"{config.model.namespace or DEFAULT_NAMESPACE}/{config.model.name}"
    return config.model or ""


def _view(dep: Deployment) -> dict[str, Any]:
    """SDK ``deployment.ModelDeployment``."""
    return {
        "name": dep.name,
        "namespace": dep.namespace,
        "config": dep.config,
        "deployed": dep.status == "ready",
        "status_details": {"status": dep.status, "description": dep.description},
        "url": "",
        "created_at": iso(dep.created_at),
        "updated_at": iso(
            dep.ready_at if dep.status != "pending" else dep.gpus_granted_at or dep.created_at
        ),
        **{field: dep.echo.get(field) for field in ECHOED},
    }


@router.post("/v1/deployment/model-deployments")
async def create_deployment(body: DeploymentRequest, emu: FreshEmulator) -> Any:
    if isinstance(body.config, str):
        namespace, name = split_ref(body.config, "config")
        raise not_found(f"deployment config {namespace}/{name}")
    namespace = body.namespace or DEFAULT_NAMESPACE
    name = body.name or new_id("model_deployment")
    key = f"{namespace}/{name}"
    if key in emu.state.deployments:
        # DMS answers a duplicate with a 500 whose text says so; clients match the text.
        return json_response({"detail": ALREADY_EXISTS}, status_code=500)
    now = emu.clock()
    nim = body.config.nim_deployment
    dep = Deployment(
        name=name,
        namespace=namespace,
        model=_model_id(body.config),
        gpus=nim.gpu if nim else 0,
        config=body.config.model_dump(mode="json", exclude_none=True),
        created_at=now,
        echo=dump_optional(body, ECHOED),
    )
    emu.state.deployments[key] = dep
    emu.gpus.request(holder(dep), dep.gpus, now)
    dep.description = emu.gpus.waiting_message(holder(dep))
    emu.store.record("deployment", key, "requested", f"{dep.gpus} GPU(s)")
    emu.store.commit()
    return _view(dep)


@router.get("/v1/deployment/model-deployments")
async def list_deployments(query: ListQueryDep, emu: FreshEmulator) -> dict[str, Any]:
    return paginate(
        list(emu.state.deployments.values()),
        query,
        _view,
        # The SDK types this filter as a bare object; these are the fields a deployment has.
        filters={
            "namespace": lambda d: d.namespace,
            "name": lambda d: d.name,
            "status": lambda d: d.status,
            "model": lambda d: d.model,
            "project": lambda d: d.echo.get("project"),
        },
        sorts={"created_at": lambda d: d.created_at},
    )


@router.get("/v1/deployment/model-deployments/{namespace}/{name}")
async def get_deployment(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
    dep = emu.state.deployments.get(f"{namespace}/{name}")
    if dep is None:
        raise not_found(f"model deployment {namespace}/{name}")
    return _view(dep)


@router.delete("/v1/deployment/model-deployments/{namespace}/{name}")
async def delete_deployment(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
    key = f"{namespace}/{name}"
    dep = emu.state.deployments.pop(key, None)
    if dep is None:
        raise not_found(f"model deployment {namespace}/{name}")
    emu.gpus.release(holder(dep))
    if emu.real is not None:
        emu.real.stop(key)  # at once, not at the next tick
    emu.catalog.forget(dep.model)
    emu.store.record("deployment", key, "deleted")
    emu.store.commit()
    # SDK DeleteResponse; the blueprint reads .json() of it, so never an empty 204.
    return delete_response(key, emu.clock(), f"model deployment {key}")
