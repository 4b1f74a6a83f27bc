"""Evaluator (nemo host): evaluation configs, targets and jobs, their results and the results ZIP.

Shapes follow the official SDK (nemo-microservices 1.5.0): requests
``evaluation.JobCreateParams`` (config and target inline or as "ns/name" references), answers
``evaluation.EvaluationJob``, ``EvaluationStatusDetails`` and ``EvaluationResult``.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict

from flywheel_nmp_emulator.api.deps import FreshEmulator, SchedulerDep, conflict, not_found
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
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import EvaluationJob

router = APIRouter(tags=["evaluator"])

JobStatus = Literal[
    "created", "pending", "running", "cancelled", "cancelling", "failed", "completed", "ready",
    "unknown",
]  # fmt: skip
TargetType = Literal["model", "cached_outputs", "retriever", "rag", "rows", "dataset"]
ACTIVE = ("created", "pending", "running")


class ConfigBody(BaseModel):
    """SDK ``EvaluationConfigParam``: only ``type`` is required; tasks, groups and params are
    free-form objects whose content the job checks when it runs."""

    model_config = ConfigDict(extra="allow")

    type: str
    name: str | None = None
    namespace: str | None = None


class TargetBody(BaseModel):
    """SDK ``EvaluationTargetParam``: ``type`` is required; model may be a string or an object."""

    model_config = ConfigDict(extra="allow")

    type: TargetType
    name: str | None = None
    namespace: str | None = None


class EvaluationRequest(StrictBody):
    """SDK ``evaluation.JobCreateParams``."""

    config: str | ConfigBody
    target: str | TargetBody
    custom_fields: dict[str, Any] | None = None
    description: str | None = None
    namespace: str | None = None
    output_files_url: str | None = None
    ownership: Ownership | None = None
    project: str | None = None
    # Accepted because the SDK sends them, but the emulator owns a job's state and ignores them.
    result: str | None = None
    status: JobStatus | None = None
    status_details: dict[str, Any] | None = None


ECHOED = ("custom_fields", "description", "output_files_url", "ownership", "project")


def _task_status(job: EvaluationJob) -> dict[str, str] | None:
    """Per-task status (SDK literal: pending, running, completed, failed); None when cancelled."""
    per_job = {"created": "pending", "pending": "pending"}.get(job.status, job.status)
    if per_job not in ("pending", "running", "completed", "failed"):
        return None
    tasks = job.config.get("tasks")
    return {name: per_job for name in tasks} if isinstance(tasks, dict) else None


def status_details(job: EvaluationJob) -> dict[str, Any]:
    """SDK ``EvaluationStatusDetails`` (it has no ``status``: that is on the job)."""
    return {
        "progress": job.progress,
        "message": job.message,
        "samples_processed": job.records,
        "task_status": _task_status(job),
    }


def _view(job: EvaluationJob) -> dict[str, Any]:
    """SDK ``evaluation.EvaluationJob``."""
    return {
        "id": job.id,
        "namespace": job.namespace,
        "status": job.status,
        "status_details": status_details(job),
        "config": job.config,
        "target": job.target,
        "result": job.result_id,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.finished_at or job.started_at or job.created_at),
        **{field: job.echo.get(field) for field in ECHOED},
    }


def _job(emu: Emulator, job_id: str) -> EvaluationJob:
    job = emu.state.evaluation_jobs.get(job_id)
    if job is None:
        raise not_found(f"evaluation job {job_id}")
    return job


def _results(job: EvaluationJob) -> dict[str, Any]:
    """SDK ``EvaluationResult`` (``job`` is its one required field)."""
    if job.status != "completed" or job.results is None:
        raise HTTPException(
            status_code=409, detail=f"evaluation job {job.id} has no results: it is {job.status}"
        )
    finished = iso(job.finished_at or job.created_at)
    return {
        "id": job.result_id or job.id,
        "job": job.id,
        "namespace": job.namespace,
        "created_at": finished,
        "updated_at": finished,
        **job.results,
    }


def _resolve(stored: dict[str, dict[str, Any]], ref: str | BaseModel, what: str) -> dict[str, Any]:
    """An inline entity as sent, or the stored one a 'ns/name' reference names (404 if none)."""
    if isinstance(ref, BaseModel):
        return ref.model_dump(mode="json", exclude_none=True)
    namespace, name = split_ref(ref, what)
    entity = stored.get(f"{namespace}/{name}")
    if entity is None:
        raise not_found(f"evaluation {what} {namespace}/{name}")
    return entity


def _store_entity(
    emu: Emulator, stored: dict[str, dict[str, Any]], body: BaseModel, prefix: str
) -> dict[str, Any]:
    entity = body.model_dump(mode="json", exclude_none=True)
    entity_id = new_id(prefix)
    entity.setdefault("namespace", DEFAULT_NAMESPACE)
    entity.setdefault("name", entity_id)
    key = f"{entity['namespace']}/{entity['name']}"
    if key in stored:
        raise conflict(f"evaluation {prefix.removeprefix('eval-')} {key}")
    now = iso(emu.clock())
    entity.update(id=entity_id, created_at=now, updated_at=now)
    stored[key] = entity
    emu.store.commit()
    return entity


def _stored(stored: dict[str, dict[str, Any]], namespace: str, name: str, what: str) -> Any:
    entity = stored.get(f"{namespace}/{name}")
    if entity is None:
        raise not_found(f"evaluation {what} {namespace}/{name}")
    return entity


def _entity_routes(collection: str, what: str, body_type: type[BaseModel]) -> None:
    """Create, get and delete of evaluation configs or targets, which jobs may name by
    'ns/name'; both live in `emu.state.evaluation_<collection>`."""
    path = f"/v1/evaluation/{collection}"

    def stored(emu: Emulator) -> dict[str, dict[str, Any]]:
        entities: dict[str, dict[str, Any]] = getattr(emu.state, f"evaluation_{collection}")
        return entities

    async def create(body: BaseModel, emu: FreshEmulator) -> dict[str, Any]:
        return _store_entity(emu, stored(emu), body, f"eval-{what}")

    create.__annotations__["body"] = body_type  # FastAPI reads the body's model from here

    async def get(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
        entity: dict[str, Any] = _stored(stored(emu), namespace, name, what)
        return entity

    async def delete(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
        entity = _stored(stored(emu), namespace, name, what)
        del stored(emu)[f"{namespace}/{name}"]
        emu.store.commit()
        return delete_response(entity["id"], emu.clock(), f"evaluation {what} {namespace}/{name}")

    router.add_api_route(path, create, methods=["POST"])
    router.add_api_route(f"{path}/{{namespace}}/{{name}}", get, methods=["GET"])
    router.add_api_route(f"{path}/{{namespace}}/{{name}}", delete, methods=["DELETE"])


_entity_routes("configs", "config", ConfigBody)
_entity_routes("targets", "target", TargetBody)


@router.post("/v1/evaluation/jobs")
async def create_job(body: EvaluationRequest, emu: FreshEmulator) -> dict[str, Any]:
    config = _resolve(emu.state.evaluation_configs, body.config, "config")
    target = _resolve(emu.state.evaluation_targets, body.target, "target")
    if not isinstance(config.get("tasks"), dict):
        raise HTTPException(status_code=422, detail="config.tasks must be an object of tasks")
    now = emu.clock()
    job = EvaluationJob(
        id=new_id("eval"),
        namespace=body.namespace or DEFAULT_NAMESPACE,
        config=config,
        target=target,
        created_at=now,
        echo=dump_optional(body, ECHOED),
    )
    emu.state.evaluation_jobs[job.id] = job
    emu.store.record("evaluation", job.id, "created")
    emu.store.commit()
    return _view(job)


@router.get("/v1/evaluation/jobs")
async def list_jobs(query: ListQueryDep, emu: FreshEmulator) -> dict[str, Any]:
    return paginate(
        list(emu.state.evaluation_jobs.values()),
        query,
        _view,
        filters={
            "namespace": lambda j: j.namespace,
            "status": lambda j: j.status,
            "project": lambda j: j.echo.get("project"),
        },
        sorts={"created_at": lambda j: j.created_at},
    )


@router.get("/v1/evaluation/jobs/{job_id}")
async def get_job(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    return _view(_job(emu, job_id))


@router.get("/v1/evaluation/jobs/{job_id}/status")
async def get_job_status(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    return status_details(_job(emu, job_id))


@router.post("/v1/evaluation/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, emu: FreshEmulator, scheduler: SchedulerDep) -> dict[str, Any]:
    """Stops the run and answers the job, now ``cancelled``. The SDK types this answer as a bare
    ``object``, so any JSON parses; a job that already finished is answered unchanged (200,
    idempotent) rather than with an error, so a janitor can cancel blindly."""
    job = _job(emu, job_id)
    if job.status in ACTIVE:
        now = emu.clock()
        scheduler.evaluations.forget(job_id)
        job.status = "cancelled"
        job.finished_at = now
        job.message = "cancelled by request"
        emu.store.record("evaluation", job.id, "cancelled")
        emu.store.commit()
    return _view(job)


@router.get("/v1/evaluation/jobs/{job_id}/results")
async def get_results(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    return _results(_job(emu, job_id))


@router.get("/v1/evaluation/jobs/{job_id}/download-results")
async def download_results(job_id: str, emu: FreshEmulator) -> Response:
    results = _results(_job(emu, job_id))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("results.json", orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{job_id}-results.zip"'},
    )


@router.delete("/v1/evaluation/jobs/{job_id}")
async def delete_job(job_id: str, emu: FreshEmulator, scheduler: SchedulerDep) -> dict[str, Any]:
    # The SDK discards this body (delete() -> None); it stays JSON for clients that read it.
    _job(emu, job_id)
    del emu.state.evaluation_jobs[job_id]
    scheduler.evaluations.forget(job_id)
    emu.store.commit()
    return delete_response(job_id, emu.clock(), f"evaluation job {job_id}")
