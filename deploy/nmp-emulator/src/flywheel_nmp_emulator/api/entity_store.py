"""Entity Store (nemo host): namespaces, dataset registrations, model entities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from flywheel_nmp_emulator.api.deps import FreshEmulator, conflict, not_found
from flywheel_nmp_emulator.ids import iso
from flywheel_nmp_emulator.state.records import CustomizedModel, Dataset, Namespace

router = APIRouter(tags=["entity store"])


class NamespaceRequest(BaseModel):
    id: str


class DatasetRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    namespace: str
    files_url: str = ""
    description: str = ""
    project: str = ""


class DatasetPatch(BaseModel):
    model_config = ConfigDict(extra="allow")

    files_url: str | None = None
    description: str | None = None
    project: str | None = None


def _dataset_view(ds: Dataset) -> dict[str, Any]:
    return {
        **ds.extra,
        "id": f"dataset-{ds.namespace}-{ds.name}",
        "name": ds.name,
        "namespace": ds.namespace,
        "description": ds.description,
        "files_url": ds.files_url,
        "project": ds.project,
        "created_at": iso(ds.created_at),
        "updated_at": iso(ds.updated_at),
    }


def model_view(model: CustomizedModel) -> dict[str, Any]:
    return {
        "id": model.id,
        "name": model.name,
        "namespace": model.namespace,
        "base_model": model.base_model,
        "peft": {"finetuning_type": "lora"},
        "customization_job_id": model.job_id,
        "status": "ready" if model.trained_at is not None else "training",
        "created_at": iso(model.created_at),
        "updated_at": iso(model.trained_at or model.created_at),
    }


@router.post("/v1/namespaces", status_code=201)
async def create_namespace(body: NamespaceRequest, emu: FreshEmulator) -> dict[str, Any]:
    if body.id in emu.state.namespaces:
        raise conflict(f"namespace {body.id}")
    ns = emu.state.namespaces[body.id] = Namespace(id=body.id, created_at=emu.clock())
    emu.store.commit()
    return {"id": ns.id, "created_at": iso(ns.created_at)}


@router.get("/v1/namespaces/{namespace}")
async def get_namespace(namespace: str, emu: FreshEmulator) -> dict[str, Any]:
    ns = emu.state.namespaces.get(namespace)
    if ns is None:
        raise not_found(f"namespace {namespace}")
    return {"id": ns.id, "created_at": iso(ns.created_at)}


@router.get("/v1/datasets")
async def list_datasets(emu: FreshEmulator) -> dict[str, Any]:
    return {"object": "list", "data": [_dataset_view(d) for d in emu.state.datasets.values()]}


@router.post("/v1/datasets")
async def create_dataset(body: DatasetRequest, emu: FreshEmulator) -> dict[str, Any]:
    key = f"{body.namespace}/{body.name}"
    if key in emu.state.datasets:
        raise conflict(f"dataset {key}")
    now = emu.clock()
    ds = Dataset(
        name=body.name,
        namespace=body.namespace,
        files_url=body.files_url,
        description=body.description,
        project=body.project,
        extra=body.model_extra or {},
        created_at=now,
        updated_at=now,
    )
    emu.state.datasets[key] = ds
    emu.store.commit()
    return _dataset_view(ds)


@router.get("/v1/datasets/{namespace}/{name}")
async def get_dataset(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
    ds = emu.state.datasets.get(f"{namespace}/{name}")
    if ds is None:
        raise not_found(f"dataset {namespace}/{name}")
    return _dataset_view(ds)


@router.patch("/v1/datasets/{namespace}/{name}")
async def update_dataset(
    namespace: str, name: str, body: DatasetPatch, emu: FreshEmulator
) -> dict[str, Any]:
    ds = emu.state.datasets.get(f"{namespace}/{name}")
    if ds is None:
        raise not_found(f"dataset {namespace}/{name}")
    for field in ("files_url", "description", "project"):
        value = getattr(body, field)
        if value is not None:
            setattr(ds, field, value)
    extra = {k: v for k, v in (body.model_extra or {}).items() if k not in ("name", "namespace")}
    ds.extra.update(extra)
    ds.updated_at = emu.clock()
    emu.store.commit()
    return _dataset_view(ds)


@router.delete("/v1/datasets/{namespace}/{name}")
async def delete_dataset(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
    if emu.state.datasets.pop(f"{namespace}/{name}", None) is None:
        raise not_found(f"dataset {namespace}/{name}")
    emu.store.commit()
    return {"message": f"dataset {namespace}/{name} deleted"}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, emu: FreshEmulator) -> dict[str, Any]:
    model = emu.state.models.get(model_id)
    if model is not None:
        return model_view(model)
    deployment = next((d for d in emu.state.deployments.values() if d.model == model_id), None)
    if deployment is None:
        raise not_found(f"model {model_id}")
    # A base model is known to the Entity Store through its deployment.
    namespace, _, name = model_id.rpartition("/")
    return {
        "id": model_id,
        "name": name,
        "namespace": namespace,
        "created_at": iso(deployment.created_at),
    }


@router.delete("/v1/models/{model_id:path}")
async def delete_model(model_id: str, emu: FreshEmulator) -> dict[str, Any]:
    model = emu.state.models.pop(model_id, None)
    if model is None:
        raise not_found(f"model {model_id}")
    if model.adapter_key:
        emu.store.blobs.delete_prefix(model.adapter_key)
    emu.catalog.forget(model_id)
    emu.store.commit()
    return {"message": f"model {model_id} deleted"}
