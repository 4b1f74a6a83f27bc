"""Deployment Management (nemo host): NIM deployments that take GPUs from the inventory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from flywheel_nmp_emulator.api.deps import FreshEmulator, json_response, not_found
from flywheel_nmp_emulator.ids import iso
from flywheel_nmp_emulator.jobs.deployments import holder
from flywheel_nmp_emulator.state.records import Deployment

router = APIRouter(tags=["deployment management"])

ALREADY_EXISTS = "model deployment already exists"


class NimDeployment(BaseModel):
    model_config = ConfigDict(extra="allow")

    image_name: str = ""
    image_tag: str = ""
    pvc_size: str = ""
    gpu: int = Field(default=1, ge=0)


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    nim_deployment: NimDeployment = Field(default_factory=NimDeployment)


class DeploymentRequest(BaseModel):
    name: str
    namespace: str
    config: DeploymentConfig


def _view(dep: Deployment) -> dict[str, Any]:
    return {
        "name": dep.name,
        "namespace": dep.namespace,
        "deployment_id": f"{dep.namespace}/{dep.name}",
        "config": dep.config,
        "deployed": dep.status == "ready",
        "status_details": {
            "status": dep.status,
            "description": dep.description,
            "message": dep.description,
        },
        "url": "",
        "created_at": iso(dep.created_at),
        "updated_at": iso(
            dep.ready_at if dep.status != "pending" else dep.gpus_granted_at or dep.created_at
        ),
    }


@router.post("/v1/deployment/model-deployments")
async def create_deployment(body: DeploymentRequest, emu: FreshEmulator) -> Any:
    key = f"{body.namespace}/{body.name}"
    if key in emu.state.deployments:
        # DMS answers a duplicate with a 500 whose text says so; clients match the text.
        return json_response({"detail": ALREADY_EXISTS}, status_code=500)
    now = emu.clock()
    dep = Deployment(
        name=body.name,
        namespace=body.namespace,
        model=body.config.model,
        gpus=body.config.nim_deployment.gpu,
        config=body.config.model_dump(),
        created_at=now,
    )
    emu.state.deployments[key] = dep
    emu.gpus.request(holder(dep), dep.gpus, now)
    dep.description = emu.gpus.waiting_message(holder(dep))
    emu.store.record("deployment", key, "requested", f"{dep.gpus} GPU(s)")
    emu.store.commit()
    return _view(dep)


@router.get("/v1/deployment/model-deployments")
async def list_deployments(emu: FreshEmulator) -> dict[str, Any]:
    return {"object": "list", "data": [_view(d) for d in emu.state.deployments.values()]}


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
    emu.catalog.forget(dep.model)
    emu.store.record("deployment", key, "deleted")
    emu.store.commit()
    # The blueprint reads .json() of this answer: it must be a JSON body, never an empty 204.
    return {
        "message": f"model deployment {namespace}/{name} deleted",
        "name": name,
        "namespace": namespace,
    }
