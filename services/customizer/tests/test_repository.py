"""The Mongo repository on the real database (FerretDB-safe operations only; the lease is the
kit's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts.runtime.testing import ManualClock
from flywheel_customizer.jobs import CustomizationRecord, Phase
from flywheel_customizer.repository import MongoCustomizations
from flywheel_customizer.testing.events import nim_up
from flywheel_customizer.testing.stack import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(sandbox: Sandbox) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(sandbox.mongo_url, tz_aware=True)
    yield client[sandbox.database]
    await client.close()


async def test_records_are_added_once_and_saved_only_from_the_expected_phase(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    clock = ManualClock()
    store = MongoCustomizations(db, clock)
    await store.ensure_indexes()
    first = CustomizationRecord.from_nim_up(nim_up(), clock())
    clock.advance(1)
    second = CustomizationRecord.from_nim_up(nim_up(), clock())
    assert await store.add(first) and await store.add(second)
    assert not await store.add(first)
    assert await store.active() == [first, second]

    training = first.model_copy(update={"phase": Phase.TRAINING, "job_id": "cust-1"})
    assert await store.save(training, expected=Phase.REQUESTED)
    assert not await store.save(training, expected=Phase.REQUESTED), "moved on already"
    done = training.model_copy(update={"phase": Phase.FINISHED, "done_published": True})
    assert await store.save(done, expected=Phase.TRAINING)
    assert await store.active() == [second]


async def test_cancellations_keep_the_first_reason(db: AsyncDatabase[dict[str, Any]]) -> None:
    store = MongoCustomizations(db, ManualClock())
    await store.cancel_run("run-a", "first")
    await store.cancel_run("run-a", "second")
    assert await store.cancellations(["run-a", "run-b"]) == {"run-a": "first"}
    assert await store.cancellations([]) == {}
