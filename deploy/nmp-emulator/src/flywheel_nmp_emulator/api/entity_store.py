"""Entity Store (nemo host): namespaces, dataset registrations, model entities.

Shapes follow the official SDK (nemo-microservices 1.5.0): ``Namespace``, ``Dataset``,
``Model`` and ``shared.DeleteResponse``. ``GET /v1/models`` (the list) belongs to the NIM proxy
in this single-port emulator (api/nim.py), so only single models are served here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from flywheel_nmp_emulator.api.deps import FreshEmulator, conflict, not_found
from flywheel_nmp_emulator.api.listing import ListQueryDep, paginate
from flywheel_nmp_emulator.api.schemas import (
    DEFAULT_NAMESPACE,
    Ownership,
    StrictBody,
    delete_response,
    dump_optional,
)
from flywheel_nmp_emulator.ids import iso, new_id
from flywheel_nmp_emulator.state.records import CustomizedModel, Dataset, Namespace

router = APIRouter(tags=["entity store"])


class NamespaceRequest(StrictBody):
    """SDK ``NamespaceCreateParams``."""

    id: str | None = None
    custom_fields: dict[str, Any] | None = None
    description: str | None = None
    ownership: Ownership | None = None
    project: str | None = None


class DatasetFields(StrictBody):
    """The optional fields shared by SDK ``DatasetCreateParams`` and ``DatasetUpdateParams``."""

    custom_fields: dict[str, Any] | None = None
    description: str | None = None
    format: str | None = None
    hf_endpoint: str | None = None
    limit: int | None = None
    ownership: Ownership | None = None
    project: str | None = None
    split: str | None = None


class DatasetRequest(DatasetFields):
    """SDK ``DatasetCreateParams``: files_url is required."""

    files_url: str
    name: str | None = None
    namespace: str | None = None


class DatasetPatch(DatasetFields):
    """SDK ``DatasetUpdateParams``: name and namespace are in the path, not the body."""

    files_url: str | None = None


# Dataset fields kept in the record's `extra` and echoed by views. ownership is accepted (the
# SDK's params have it) but the SDK's Dataset answer has no such field, so it is not echoed.
DATASET_EXTRA = ("custom_fields", "format", "hf_endpoint", "limit", "split")


def _namespace_view(ns: Namespace) -> dict[str, Any]:
    """SDK ``Namespace``."""
    return {
        "id": ns.id,
        "description": ns.description,
        "project": ns.project,
        "custom_fields": ns.custom_fields,
        "ownership": ns.ownership,
        "created_at": iso(ns.created_at),
        "updated_at": iso(ns.created_at),
    }


def _dataset_view(ds: Dataset) -> dict[str, Any]:
    """SDK ``Dataset``."""
    return {
        "id": ds.id or f"dataset-{ds.namespace}-{ds.name}",
        "name": ds.name,
        "namespace": ds.namespace,
        "description": ds.description,
        "files_url": ds.files_url,
        "project": ds.project or None,
        "created_at": iso(ds.created_at),
        "updated_at": iso(ds.updated_at),
        **{field: ds.extra.get(field) for field in DATASET_EXTRA},
    }


def model_view(model: CustomizedModel) -> dict[str, Any]:
    """SDK ``Model``: a LoRA adapter on its base model. The SDK type has no id, status or job
    field, so the producing job is told through custom_fields."""
    return {
        "name": model.name,
        "namespace": model.namespace,
        "base_model": model.base_model,
        "peft": {"finetuning_type": "lora"},
        "custom_fields": {
            "customization_job_id": model.job_id,
            "trained": model.trained_at is not None,
        },
        "created_at": iso(model.created_at),
        "updated_at": iso(model.trained_at or model.created_at),
    }


def _patchable(body: BaseModel) -> dict[str, Any]:
    return dump_optional(body, DATASET_EXTRA)


@router.post("/v1/namespaces", status_code=201)
async def create_namespace(body: NamespaceRequest, emu: FreshEmulator) -> dict[str, Any]:
    ns_id = body.id or new_id("namespace")
    if ns_id in emu.state.namespaces:
        raise conflict(f"namespace {ns_id}")
    echo = dump_optional(body, ("custom_fields", "description", "ownership", "project"))
    ns = Namespace(id=ns_id, created_at=emu.clock(), **echo)
    emu.state.namespaces[ns_id] = ns
    emu.store.commit()
    return _namespace_view(ns)


@router.get("/v1/namespaces")
async def list_namespaces(query: ListQueryDep, emu: FreshEmulator) -> dict[str, Any]:
    return paginate(
        list(emu.state.namespaces.values()),
        query,
        _namespace_view,
        filters={"namespace": lambda n: n.id, "project": lambda n: n.project},
        sorts={"created_at": lambda n: n.created_at},
    )


@router.get("/v1/namespaces/{namespace}")
async def get_namespace(namespace: str, emu: FreshEmulator) -> dict[str, Any]:
    ns = emu.state.namespaces.get(namespace)
    if ns is None:
        raise not_found(f"namespace {namespace}")
    return _namespace_view(ns)


@router.delete("/v1/namespaces/{namespace}")
async def delete_namespace(namespace: str, emu: FreshEmulator) -> dict[str, Any]:
    if emu.state.namespaces.pop(namespace, None) is None:
        raise not_found(f"namespace {namespace}")
    emu.store.commit()
    return delete_response(namespace, emu.clock(), f"namespace {namespace}")


@router.get("/v1/datasets")
async def list_datasets(query: ListQueryDep, emu: FreshEmulator) -> dict[str, Any]:
    return paginate(
        list(emu.state.datasets.values()),
        query,
        _dataset_view,
        filters={"namespace": lambda d: d.namespace, "project": lambda d: d.project or None},
        sorts={"created_at": lambda d: d.created_at, "name": lambda d: d.name},
    )


@router.post("/v1/datasets")
async def create_dataset(body: DatasetRequest, emu: FreshEmulator) -> dict[str, Any]:
    dataset_id = new_id("dataset")
    namespace = body.namespace or DEFAULT_NAMESPACE
    name = body.name or dataset_id
    key = f"{namespace}/{name}"
    if key in emu.state.datasets:
        raise conflict(f"dataset {key}")
    now = emu.clock()
    ds = Dataset(
        id=dataset_id,
        name=name,
        namespace=namespace,
        files_url=body.files_url,
        description=body.description or "",
        project=body.project or "",
        extra=_patchable(body),
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
    ds.extra.update(_patchable(body))
    ds.updated_at = emu.clock()
    emu.store.commit()
    return _dataset_view(ds)


@router.delete("/v1/datasets/{namespace}/{name}")
async def delete_dataset(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
    ds = emu.state.datasets.pop(f"{namespace}/{name}", None)
    if ds is None:
        raise not_found(f"dataset {namespace}/{name}")
    emu.store.commit()
    return delete_response(
        ds.id or f"{namespace}/{name}", emu.clock(), f"dataset {namespace}/{name}"
    )


# The SDK addresses a model as /v1/models/{namespace}/{model_name}; a customized model's name
# carries its "@cust-..." suffix, and a base model such as meta/llama-3.2-1b-instruct is its
# own namespace/name.
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
        "name": name,
        "namespace": namespace or DEFAULT_NAMESPACE,
        "created_at": iso(deployment.created_at),
        "updated_at": iso(deployment.created_at),
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
    return delete_response(model_id, emu.clock(), f"model {model_id}")
