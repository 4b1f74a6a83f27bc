"""Thin subscribers (decode -> service call) and the scheduler's HTTP status."""

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from flywheel_contracts.events import (
    CustomizationDone,
    DatasetFailed,
    DatasetReady,
    EvalDone,
    RunCancelled,
)
from flywheel_contracts.runtime import ServiceKit
from flywheel_nim_manager.service import NimManagerService


def subscribe(kit: ServiceKit, service: NimManagerService) -> None:
    kit.subscribe(DatasetReady, service.on_dataset_ready)
    kit.subscribe(DatasetFailed, service.on_dataset_failed)
    kit.subscribe(RunCancelled, service.on_run_cancelled)
    kit.subscribe(EvalDone, service.on_eval_done)
    kit.subscribe(CustomizationDone, service.on_customization_done)


def scheduler_router(service: NimManagerService) -> APIRouter:
    router = APIRouter()

    @router.get("/scheduler", summary="Whether this instance schedules, and the GPU budget")
    async def scheduler() -> dict[str, Any]:
        return asdict(await service.status())

    return router
