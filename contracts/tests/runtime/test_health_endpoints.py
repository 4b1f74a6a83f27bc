"""`/health/live` and the stall hook's endpoints of the service app, without servers: the kit is
built (its clients point at a closed port) but never started, and its consumer health runs on a
clock the test drives."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from flywheel_contracts.runtime import ServiceKit, create_service_app
from flywheel_contracts.runtime.consumer_health import ConsumerHealth
from flywheel_contracts.runtime.settings import (
    HealthSettings,
    HookSettings,
    KafkaSettings,
    MongoSettings,
    ServiceSettings,
)
from flywheel_contracts.runtime.testing import ManualMonotonic

pytestmark = pytest.mark.unit

NOWHERE = "127.0.0.1:1"


@pytest.fixture
async def make_kit() -> AsyncIterator[Callable[..., ServiceKit]]:
    kits: list[ServiceKit] = []

    def make(**overrides: Any) -> ServiceKit:
        kit = ServiceKit(
            ServiceSettings(
                service_name="janitor",
                instance_id="janitor-1",
                kafka=KafkaSettings(bootstrap_servers=NOWHERE),
                mongo=MongoSettings(url=f"mongodb://{NOWHERE}"),
                **overrides,
            )
        )
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        await kit.publisher.close()
        await kit.mongo.close()


def client_of(kit: ServiceKit) -> httpx.AsyncClient:
    app = create_service_app(kit)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://kit")


def on_clock(kit: ServiceKit, clock: ManualMonotonic) -> ConsumerHealth:
    """The kit's consumer health, as a service with its own consumer declares it, on `clock`."""
    kit.consumer_health = ConsumerHealth(
        kit.settings.consumer_limits, statistics_interval_ms=5000, clock=clock
    )
    health = kit.track_consumer()
    health.started()
    return health


async def test_live_answers_200_while_the_consumer_polls_and_503_with_the_reason_after(
    make_kit: Callable[..., ServiceKit],
) -> None:
    kit = make_kit(health=HealthSettings(ready_after_s=20, live_after_s=40))
    clock = ManualMonotonic(0.0)
    on_clock(kit, clock)

    async with client_of(kit) as client:
        clock.now = 40
        alive = await client.get("/health/live")
        clock.now = 41
        stalled = await client.get("/health/live")

    assert alive.status_code == 200
    assert alive.json() == {"status": "alive", "service": "janitor", "instance": "janitor-1"}
    assert stalled.status_code == 503
    assert stalled.json() == {
        "status": "stalled",
        "service": "janitor",
        "instance": "janitor-1",
        "reason": "the consumer has not polled since it started 41s ago (liveness allows 40s)",
    }


async def test_live_stays_200_for_a_service_that_consumes_nothing(
    make_kit: Callable[..., ServiceKit],
) -> None:
    kit = make_kit(health=HealthSettings(ready_after_s=20, live_after_s=40))
    clock = ManualMonotonic(0.0)
    kit.consumer_health = ConsumerHealth(
        kit.settings.consumer_limits, statistics_interval_ms=5000, clock=clock
    )
    clock.now = 1000

    async with client_of(kit) as client:
        response = await client.get("/health/live")

    assert response.status_code == 200


async def test_the_stall_endpoints_do_not_exist_unless_the_hook_is_on(
    make_kit: Callable[..., ServiceKit],
) -> None:
    kit = make_kit()

    async with client_of(kit) as client:
        stall = await client.post("/testing/stall")
        resume = await client.post("/testing/resume")

    assert kit.stall_gate is None
    assert (stall.status_code, resume.status_code) == (404, 404)


async def test_the_stall_hook_closes_and_opens_the_consumers_gate(
    make_kit: Callable[..., ServiceKit],
) -> None:
    kit = make_kit(testing=HookSettings(stall_hook=True))
    gate = kit.stall_gate
    assert gate is not None

    async with client_of(kit) as client:
        stalled = await client.post("/testing/stall")
        closed = gate.stalled
        resumed = await client.post("/testing/resume")

    assert (stalled.status_code, stalled.json()) == (200, {"stalled": True})
    assert closed
    assert (resumed.status_code, resumed.json()) == (200, {"stalled": False})
    assert not gate.stalled
