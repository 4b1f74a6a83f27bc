"""The service app on the real stack: health, readiness that follows Kafka, metrics, AsyncAPI."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from flywheel_contracts.runtime import ServiceKit, create_service_app
from flywheel_contracts.runtime.settings import ServiceSettings
from flywheel_contracts.runtime.testing import eventually

pytestmark = pytest.mark.integration

KAFKA_RESTART_TIMEOUT_S = 90


@asynccontextmanager
async def serving(kit: ServiceKit) -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(kit)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://kit") as client,
    ):
        yield client


async def test_health_metrics_and_asyncapi_are_served(
    settings_for: Callable[..., ServiceSettings],
) -> None:
    # Named after a real service for its AsyncAPI part; it subscribes to nothing, so it never
    # joins that service's consumer group.
    kit = ServiceKit(settings_for(service_name="janitor"))

    async with serving(kit) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
        metrics = await client.get("/metrics")
        asyncapi = await client.get("/asyncapi")

    assert live.json()["status"] == "alive"
    assert ready.status_code == 200
    assert ready.json()["checks"].keys() == {"kafka", "mongo", "dead_letters", "redelivery"}
    assert "flywheel_events_consumed_total" in metrics.text
    assert "flywheel_handler_duration_seconds" in metrics.text
    assert "janitor.receive.service.stopping" in asyncapi.json()["operations"]


async def test_an_extra_check_that_fails_makes_the_service_unready(
    settings_for: Callable[..., ServiceSettings],
) -> None:
    async def nmp_down() -> None:
        raise ConnectionRefusedError("nmp refused")

    kit = ServiceKit(settings_for())
    kit.add_readiness_check("nmp", nmp_down)

    async with serving(kit) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["nmp"]["error"] == "ConnectionRefusedError: nmp refused"
    assert response.json()["checks"]["kafka"]["ok"] is True


async def test_readiness_turns_unhealthy_while_kafka_is_stopped_and_recovers_after(
    stack: Any, settings_for: Callable[..., ServiceSettings]
) -> None:
    kit = ServiceKit(settings_for())

    async with serving(kit) as client:
        assert (await client.get("/health/ready")).status_code == 200
        await asyncio.to_thread(stack.stop, "kafka")
        try:
            down = await client.get("/health/ready")
        finally:
            await asyncio.to_thread(stack.start, "kafka")

        async def ready_again() -> bool:
            return (await client.get("/health/ready")).status_code == 200

        await eventually(ready_again, timeout_s=KAFKA_RESTART_TIMEOUT_S)

    assert down.status_code == 503
    assert down.json()["checks"]["kafka"]["ok"] is False
    assert down.json()["checks"]["mongo"]["ok"] is True
