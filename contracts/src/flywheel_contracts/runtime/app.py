"""The HTTP face every service shares: health, metrics and its AsyncAPI document."""

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flywheel_contracts.asyncapi import asyncapi_document
from flywheel_contracts.runtime.consumer_health import StallGate
from flywheel_contracts.runtime.kit import ServiceKit


def create_service_app(kit: ServiceKit, *, routers: Iterable[APIRouter] = ()) -> FastAPI:
    """A FastAPI app whose lifespan starts and gracefully stops `kit`.

    `routers` add the service's own endpoints next to `/health/live`, `/health/ready`,
    `/metrics` and `/asyncapi` (and `/testing/stall|resume` with the stall test hook on).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await kit.start()
        try:
            yield
        finally:
            await kit.stop()

    app = FastAPI(title=f"flywheel {kit.service}", lifespan=lifespan)

    @app.get("/health/live")
    async def live() -> JSONResponse:
        """200 while the process works; 503 with the reason once its consumer has not polled
        for `HEALTH__LIVE_AFTER_S`: restart it."""
        body: dict[str, str] = {
            "status": "alive",
            "service": kit.service,
            "instance": kit.settings.instance_id,
        }
        problem = kit.liveness()
        if problem is None:
            return JSONResponse(body)
        return JSONResponse({**body, "status": "stalled", "reason": problem}, status_code=503)

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        readiness = await kit.readiness()
        return JSONResponse(readiness.as_json(), status_code=200 if readiness.ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document(kit.service)

    if kit.stall_gate is not None:
        app.include_router(_stall_router(kit.stall_gate))
    for router in routers:
        app.include_router(router)
    return app


def _stall_router(gate: StallGate) -> APIRouter:
    """The stall test hook's endpoints; only mounted with `TESTING__STALL_HOOK` on."""
    router = APIRouter(prefix="/testing", tags=["testing"])

    @router.post("/stall")
    async def stall() -> dict[str, bool]:
        """The consumer's next message waits before its handler until `/testing/resume`."""
        gate.stall()
        return {"stalled": gate.stalled}

    @router.post("/resume")
    async def resume() -> dict[str, bool]:
        gate.resume()
        return {"stalled": gate.stalled}

    return router
