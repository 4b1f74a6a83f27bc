"""Wiring: the kit, the NMP client, the chosen backend, the service, its handlers and the
worker loop; `create_app` for `python -m flywheel_evaluator`, `build` for tests."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from flywheel_contracts.runtime import ReadinessCheck, ServiceKit, create_service_app
from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_evaluator.api import records_router
from flywheel_evaluator.backends import Backend
from flywheel_evaluator.backends.native import NativeBackend
from flywheel_evaluator.backends.nmp import NmpBackend
from flywheel_evaluator.clients.chat import ChatEndpoints
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.config import BackendKind, EvaluatorSettings
from flywheel_evaluator.events import EvaluationEvents
from flywheel_evaluator.handlers import subscribe
from flywheel_evaluator.outbox import Outbox
from flywheel_evaluator.repository import EvaluationRepository
from flywheel_evaluator.service import EvaluatorService
from flywheel_evaluator.worker import Worker


@dataclass(frozen=True)
class Evaluator:
    """One evaluator instance's parts."""

    kit: ServiceKit
    nmp: NmpClient
    endpoints: ChatEndpoints
    repository: EvaluationRepository
    datasets: DatasetFiles
    service: EvaluatorService
    worker: Worker

    @asynccontextmanager
    async def running(self) -> AsyncIterator["Evaluator"]:
        """Started until the block ends (what the app's lifespan does, for tests)."""
        await self.kit.start()
        try:
            yield self
        finally:
            await self.kit.stop()


def build(
    settings: EvaluatorSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> Evaluator:
    """`transport` replaces the network for NMP and chat calls (tests)."""
    kit = ServiceKit(settings)
    nmp = NmpClient(settings.nmp, transport=transport)
    endpoints = ChatEndpoints(settings.chat, transport=transport)
    repository = EvaluationRepository(kit.db)
    datasets = DatasetFiles(nmp, settings.eval_file)
    native = NativeBackend(datasets, endpoints, settings)
    backend: Backend = (
        native
        if settings.backend is BackendKind.NATIVE
        else NmpBackend(nmp, datasets, native, settings)
    )
    events = EvaluationEvents(kit.new_event, kit.publisher.publish)
    outbox = Outbox(repository, events)
    worker = Worker(
        repository, backend, events, outbox, settings.worker, owner=settings.instance_id
    )
    service = EvaluatorService(repository, backend, worker)
    subscribe(kit, service)
    kit.add_loop("worker", worker.run_forever)
    kit.add_readiness_check("nmp", _nmp_reachable(nmp))
    kit.report_in_flight_with(worker.in_flight)
    kit.on_start(repository.ensure_indexes)  # before the worker looks for work
    kit.on_stop(endpoints.aclose)  # after the worker stopped calling them
    kit.on_stop(nmp.aclose)
    return Evaluator(kit, nmp, endpoints, repository, datasets, service, worker)


def _nmp_reachable(nmp: NmpClient) -> ReadinessCheck:
    async def check() -> None:
        await nmp.nim.list_models()

    return check


def create_app(settings: EvaluatorSettings) -> FastAPI:
    evaluator = build(settings)
    routers = [records_router(evaluator.repository, evaluator.datasets)]
    return create_service_app(evaluator.kit, routers=routers)
