"""The processed-events store on the real database (FerretDB locally: no TTL index)."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts.runtime.idempotency import COLLECTION, ProcessedEvents

pytestmark = pytest.mark.integration


def _store(db: AsyncDatabase[dict[str, Any]]) -> ProcessedEvents:
    return ProcessedEvents(db, consumer=f"kit-test-{uuid.uuid4().hex[:10]}")


async def test_an_id_is_seen_once_marked_and_only_by_its_own_consumer(
    kit_db: AsyncDatabase[dict[str, Any]],
) -> None:
    store, other = _store(kit_db), _store(kit_db)
    await store.ensure_indexes()
    event_id = uuid.uuid4()

    assert not await store.seen(event_id)
    await store.mark(event_id, "run.cancelled")
    await store.mark(event_id, "run.cancelled")  # a second mark is harmless

    assert await store.seen(event_id)
    assert not await other.seen(event_id)
    assert await kit_db[COLLECTION].count_documents({"event_id": str(event_id)}) == 1


async def test_the_application_expires_old_entries(kit_db: AsyncDatabase[dict[str, Any]]) -> None:
    store = _store(kit_db)
    await store.ensure_indexes()
    event_id = uuid.uuid4()
    await store.mark(event_id, "run.cancelled")

    assert await store.expire_older_than(timedelta(hours=1)) == 0
    assert await store.expire_older_than(timedelta(0)) == 1
    assert not await store.seen(event_id)
