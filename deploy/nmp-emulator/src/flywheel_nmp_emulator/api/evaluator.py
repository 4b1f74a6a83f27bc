"""Evaluator (nemo host): evaluation jobs, their results and the results ZIP."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict

from flywheel_nmp_emulator.api.deps import FreshEmulator, SchedulerDep, not_found
from flywheel_nmp_emulator.ids import iso, new_id
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import EvaluationJob

router = APIRouter(tags=["evaluator"])


class EvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    config: dict[str, Any]
    target: dict[str, Any]
    namespace: str | None = None


def _view(job: EvaluationJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "namespace": job.namespace,
        "status": job.status,
        "status_details": {
            "progress": job.progress,
            "message": job.message,
            "samples_processed": job.records,
        },
        "config": job.config,
        "target": job.target,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.finished_at or job.started_at or job.created_at),
    }


def _job(emu: Emulator, job_id: str) -> EvaluationJob:
    job = emu.state.evaluation_jobs.get(job_id)
    if job is None:
        raise not_found(f"evaluation job {job_id}")
    return job


def _results(job: EvaluationJob) -> dict[str, Any]:
    if job.status != "completed" or job.results is None:
        raise HTTPException(
            status_code=409, detail=f"evaluation job {job.id} has no results: it is {job.status}"
        )
    return {"id": job.id, **job.results}


@router.post("/v1/evaluation/jobs")
async def create_job(body: EvaluationRequest, emu: FreshEmulator) -> dict[str, Any]:
    if not isinstance(body.config.get("tasks"), dict):
        raise HTTPException(status_code=422, detail="config.tasks must be an object of tasks")
    now = emu.clock()
    job = EvaluationJob(
        id=new_id("eval"),
        namespace=body.namespace or emu.settings.namespace,
        config=body.config,
        target=body.target,
        created_at=now,
    )
    emu.state.evaluation_jobs[job.id] = job
    emu.store.record("evaluation", job.id, "created")
    emu.store.commit()
    return _view(job)


@router.get("/v1/evaluation/jobs")
async def list_jobs(emu: FreshEmulator) -> dict[str, Any]:
    return {"object": "list", "data": [_view(j) for j in emu.state.evaluation_jobs.values()]}


@router.get("/v1/evaluation/jobs/{job_id}")
async def get_job(job_id: str, emu: FreshEmulator) -> dict[str, Any]:
    return _view(_job(emu, job_id))


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
    _job(emu, job_id)
    del emu.state.evaluation_jobs[job_id]
    scheduler.evaluations.forget(job_id)
    emu.store.commit()
    return {"message": f"evaluation job {job_id} deleted", "id": job_id}
