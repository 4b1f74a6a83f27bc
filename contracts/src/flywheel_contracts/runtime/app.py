"""The HTTP face every service shares: health, metrics and its AsyncAPI document."""

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flywheel_contracts.asyncapi import asyncapi_document
from flywheel_contracts.runtime.kit import ServiceKit


def create_service_app(kit: ServiceKit, *, routers: Iterable[APIRouter] = ()) -> FastAPI:
    """A FastAPI app whose lifespan starts and gracefully stops `kit`.

    `routers` add the service's own endpoints next to `/health/live`, `/health/ready`,
    `/metrics` and `/asyncapi`.
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
    async def live() -> dict[str, str]:
        return {"status": "alive", "service": kit.service, "instance": kit.settings.instance_id}

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

    for router in routers:
        app.include_router(router)
    return app
