"""The kit's lease on the real Mongo-protocol database: one holder at a time, a standby takes
over a lapsed lease, release hands it over at once, and every change of hands is a new tenure
(fencing token) that a stale holder's check sees."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts.runtime.lease import MongoLease
from flywheel_contracts.runtime.testing import ManualClock

pytestmark = pytest.mark.integration

TTL = timedelta(seconds=10)


@pytest.fixture
async def leases(
    kit_db: AsyncDatabase[dict[str, Any]],
) -> AsyncIterator[tuple[MongoLease, MongoLease, ManualClock]]:
    collection, name, clock = (
        f"leases_{uuid.uuid4().hex[:8]}",
        "scheduler",
        ManualClock(datetime(2026, 1, 1, tzinfo=UTC)),
    )

    def lease(holder: str) -> MongoLease:
        return MongoLease(
            kit_db, collection=collection, name=name, holder_id=holder, ttl=TTL, clock=clock
        )

    yield lease("a"), lease("b"), clock
    await kit_db.drop_collection(collection)


async def test_one_holder_at_a_time_until_the_lease_lapses_or_is_released(
    leases: tuple[MongoLease, MongoLease, ManualClock],
) -> None:
    a, b, clock = leases
    assert await a.hold() == 1
    assert await b.hold() is None and b.tenure is None
    clock.advance(9)
    assert await a.hold() == 1, "renewed: the same tenure"
    clock.advance(9)
    assert await b.hold() is None, "renewed 9 s ago"
    assert await b.holder() == "a"
    clock.advance(2)
    assert await b.hold() == 2, "lapsed: the standby takes it, in a new tenure"
    assert await a.hold() is None
    await b.release()
    assert await a.holder() is None
    assert await a.hold() == 3, "released: taken at once"


async def test_a_holder_whose_lease_lapsed_comes_back_in_a_new_tenure(
    leases: tuple[MongoLease, MongoLease, ManualClock],
) -> None:
    a, _, clock = leases
    tenure = await a.hold()
    clock.advance(11)  # a pause longer than the ttl: anyone could have held it meanwhile
    again = await a.hold()
    assert again is not None and again != tenure, "work begun in the old tenure must stop"
