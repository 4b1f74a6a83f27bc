"""The read-only HTTP view of the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from flywheel_contracts.events import RunCancelled, ServiceStopping
from flywheel_janitor.api import ledger_router
from flywheel_janitor.reclaimer import Reclaimer
from flywheel_janitor.service import JanitorService
from flywheel_janitor.testing import (
    FakeResources,
    InMemoryLedger,
    RunEvents,
    customization_started,
    nim_up,
)

pytestmark = pytest.mark.unit


@pytest.fixture
async def client(ledger: InMemoryLedger) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(ledger_router(ledger))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://janitor"
    ) as client:
        yield client


async def test_live_lists_what_every_run_holds(
    service: JanitorService, client: httpx.AsyncClient
) -> None:
    first, second = RunEvents(), RunEvents()
    await service.on_nim_up(first(nim_up("dep-a"), 1))
    await service.on_customization_started(second(customization_started("cust-1"), 2))

    body = (await client.get("/ledger/live")).json()

    assert body["count"] == 2
    assert [(r["run_id"], r["kind"], r["ref"], r["live"]) for r in body["resources"]] == [
        (str(first.run_id), "deployment", "dfwbp/dep-a", True),
        (str(second.run_id), "customization_job", "cust-1", True),
    ]


async def test_a_run_shows_its_resources_and_history(
    service: JanitorService,
    reclaimer: Reclaimer,
    nmp: FakeResources,
    client: httpx.AsyncClient,
    run: RunEvents,
) -> None:
    await service.on_nim_up(run(nim_up("dep-a"), 1))
    nmp.existing.add("deployment/dep-a")
    await service.on_run_cancelled(run(RunCancelled(reason="enough"), 2, "cli"))
    await reclaimer.run_pending()

    body = (await client.get(f"/ledger/runs/{run.run_id}")).json()

    assert body["run"]["terminal"]["trigger"] == "run_cancelled"
    (resource,) = body["resources"]
    assert (resource["ref"], resource["live"], resource["outcome"]) == (
        "dfwbp/dep-a",
        False,
        "reclaimed",
    )
    assert [entry["kind"] for entry in body["history"]] == [
        "nim.up",
        "run.cancelled",
        "resources.reclaimed",
    ]
    assert body["history"][-1]["summary"] == (
        "run_cancelled: reclaimed 1, already gone 0, failed 0"
    )


async def test_an_unknown_run_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/ledger/runs/{uuid4()}")

    assert response.status_code == 404


async def test_instances_lists_stopped_instances_newest_first(
    service: JanitorService, client: httpx.AsyncClient, run: RunEvents
) -> None:
    for minute, name in enumerate(("a", "b")):
        stopping = ServiceStopping(service="customizer", instance=name)
        await service.on_service_stopping(run(stopping, minute, "customizer"))

    body = (await client.get("/ledger/instances", params={"limit": 1})).json()

    assert [i["instance"] for i in body["instances"]] == ["b"]
