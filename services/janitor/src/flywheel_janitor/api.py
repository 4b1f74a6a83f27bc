"""The read-only HTTP view of the ledger."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query

from flywheel_janitor.ledger import ResourceRecord
from flywheel_janitor.ports import Ledger


def _resource(record: ResourceRecord) -> dict[str, Any]:
    return {"ref": record.target.ref.id, "live": record.live, **record.model_dump(mode="json")}


def ledger_router(ledger: Ledger) -> APIRouter:
    router = APIRouter(prefix="/ledger", tags=["ledger"])

    @router.get("/live")
    async def live() -> dict[str, Any]:
        """Every resource the ledger holds live, over all runs."""
        resources = await ledger.live_resources()
        return {"count": len(resources), "resources": [_resource(r) for r in resources]}

    @router.get("/runs/{run_id}")
    async def run(run_id: UUID) -> dict[str, Any]:
        """One run: what the janitor knows of it, its resources and its history."""
        record = await ledger.get_run(run_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"run {run_id} is not in the ledger")
        resources = await ledger.resources_of(run_id)
        history = await ledger.history(run_id)
        return {
            "run": record.model_dump(mode="json"),
            "resources": [_resource(r) for r in resources],
            "history": [entry.model_dump(mode="json") for entry in history],
        }

    @router.get("/instances")
    async def instances(limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        """The latest `service.stopping`s: which instance stopped holding what."""
        stopped = await ledger.stopped_instances(limit)
        return {"instances": [instance.model_dump(mode="json") for instance in stopped]}

    return router
