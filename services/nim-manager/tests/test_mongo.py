"""The repository against the real Mongo-protocol database (the lease is the kit's)."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts.run_config import EvalType
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_nim_manager import conductor
from flywheel_nim_manager.records import Ending, EndReason, Phase, WorkItem, WorkOutcome
from flywheel_nim_manager.repository import MongoRepository
from flywheel_nim_manager.testing.fakes import (
    T0,
    cancel_event,
    candidate,
    eval_done,
    ready_event,
)

pytestmark = pytest.mark.integration

TTL = timedelta(seconds=5)


@pytest.fixture
async def db(stack: StackHandle) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    name = f"nim_manager_test_{uuid4().hex[:8]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def test_runs_and_candidates_round_trip(db: AsyncDatabase[dict[str, Any]]) -> None:
    repository = MongoRepository(db)
    await repository.ensure_indexes()
    run_id = uuid4()
    ready = ready_event(run_id, [candidate("org/a-1b", customization_enabled=True)])
    records = conductor.plan(run_id, ready.payload, T0)
    assert await repository.add_ready(ready, records)
    assert not await repository.add_ready(ready, records), "planned once"

    [run] = [r for r in await repository.open_runs() if r.run_id == run_id]
    assert run.ready == ready
    [stored] = await repository.candidates([run_id])
    assert stored == records[0]

    done = eval_done(run_id, "org/a-1b", EvalType.BASE).payload
    assert await repository.record_outcome(
        run_id, "org/a-1b", WorkItem.BASE_EVAL, WorkOutcome.of_eval(done)
    )
    assert not await repository.record_outcome(
        uuid4(), "org/a-1b", WorkItem.BASE_EVAL, WorkOutcome.of_eval(done)
    )

    granted = stored.model_copy(update={"phase": Phase.DEPLOYING, "granted_at": T0})
    assert await repository.save(granted, expected=Phase.QUEUED)
    assert not await repository.save(granted, expected=Phase.QUEUED), "moved already"
    ending = Ending(reason=EndReason.CANCELLED, message="stop")
    removing = granted.model_copy(update={"phase": Phase.REMOVING, "ending": ending})
    assert await repository.save(removing, expected=Phase.DEPLOYING)

    [reloaded] = await repository.candidates([run_id])
    assert reloaded.phase is Phase.REMOVING
    assert reloaded.ending == ending
    assert reloaded.outcomes[WorkItem.BASE_EVAL].evaluation == done, "outcomes survive saves"

    await repository.add_cancelled(cancel_event(run_id))
    [run] = [r for r in await repository.open_runs() if r.run_id == run_id]
    assert run.cancelled is not None
    await repository.finish_run(run_id)
    assert run_id not in {r.run_id for r in await repository.open_runs()}


async def test_a_cancel_before_the_datasets_keeps_the_run_open_until_concluded(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    repository = MongoRepository(db)
    await repository.ensure_indexes()
    run_id = uuid4()
    await repository.add_cancelled(cancel_event(run_id))
    await repository.finish_run(run_id)
    ready = ready_event(run_id, [candidate("org/a-1b")])
    assert not await repository.add_ready(ready, conductor.plan(run_id, ready.payload, T0))
    assert run_id not in {r.run_id for r in await repository.open_runs()}
