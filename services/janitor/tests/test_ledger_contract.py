"""The `Ledger` contract, run on the in-memory fake (unit) and on Mongo (integration), so the
fake the other unit tests rely on behaves like the real store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from flywheel_contracts.events import InFlightWork, ReclaimTrigger, ResourceKind
from flywheel_janitor.ledger import (
    HistoryEntry,
    InFlightEntry,
    Outcome,
    ReclaimTask,
    ShutdownMark,
    StoppedInstance,
    Target,
    Terminal,
)
from flywheel_janitor.ports import Ledger, ReclaimResult, RunFacts
from flywheel_janitor.repository import MongoLedger
from flywheel_janitor.testing import T0, InMemoryLedger

DEPLOYMENT = Target(kind=ResourceKind.DEPLOYMENT, resource_id="dep-a", namespace="dfwbp")
JOB = Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id="cust-1")


def _at(minutes: float) -> Any:
    return T0 + timedelta(minutes=minutes)


def _terminal(cause: str, minutes: float = 0) -> Terminal:
    return Terminal(
        trigger=ReclaimTrigger.RUN_CANCELLED,
        reason=f"cancelled by {cause}",
        event_type="run.cancelled",
        cause_id=cause,
        at=_at(minutes),
    )


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.unit),
        pytest.param("mongo", marks=pytest.mark.integration),
    ]
)
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[Ledger]:
    if request.param == "memory":
        yield InMemoryLedger()
        return
    mongo_url: str = request.getfixturevalue("mongo_url")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"janitor_ledger_{uuid.uuid4().hex[:10]}"
    mongo = MongoLedger(client[name])
    await mongo.ensure_indexes()
    try:
        yield mongo
    finally:
        await client.drop_database(name)
        await client.close()


async def test_a_run_keeps_its_earliest_and_latest_event_times(ledger: Ledger) -> None:
    run_id = uuid.uuid4()
    await ledger.touch_run(RunFacts(run_id, _at(5), "nim.up"))
    await ledger.touch_run(RunFacts(run_id, _at(1), "run.requested", "w1", "c1"))
    run = await ledger.touch_run(RunFacts(run_id, _at(3), "eval.started"))

    assert (run.first_event_at, run.active_at) == (_at(1), _at(5))
    assert (run.workload_id, run.client_id, run.last_event_type) == ("w1", "c1", "eval.started")
    assert run.terminal is None
    assert await ledger.get_run(run_id) == run
    assert await ledger.get_run(uuid.uuid4()) is None


async def test_a_run_ends_once(ledger: Ledger) -> None:
    run_id = uuid.uuid4()
    await ledger.touch_run(RunFacts(run_id, _at(0), "run.requested"))

    first = await ledger.end_run(run_id, _terminal("a"))
    second = await ledger.end_run(run_id, _terminal("b"))

    assert first == second == _terminal("a")
    assert [r.run_id for r in await ledger.runs_ended_by("a")] == [run_id]
    assert await ledger.runs_ended_by("b") == []


async def test_ending_runs_up_to_a_time_spares_later_and_ended_runs(ledger: Ledger) -> None:
    early, late, ended = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for run_id, minute in ((early, 1), (late, 11), (ended, 2)):
        await ledger.touch_run(RunFacts(run_id, _at(minute), "run.requested"))
    await ledger.end_run(ended, _terminal("cancel"))

    await ledger.mark_terminal_up_to(_at(10), _terminal("shutdown", 10))

    assert [r.run_id for r in await ledger.runs_ended_by("shutdown")] == [early]
    late_run = await ledger.get_run(late)
    assert late_run is not None
    assert late_run.terminal is None


async def test_liveness_does_not_depend_on_event_order(ledger: Ledger) -> None:
    run_id = uuid.uuid4()
    down_first = DEPLOYMENT.model_copy(update={"resource_id": "dep-b"})
    await ledger.record_down(run_id, down_first.model_copy(update={"namespace": None}), _at(5))
    await ledger.record_up(run_id, down_first, _at(1), "model-b")
    await ledger.record_up(run_id, DEPLOYMENT, _at(2), "model-a")
    await ledger.record_up(run_id, JOB, _at(3))
    await ledger.record_up(run_id, JOB, _at(4), "adapter")

    live = await ledger.live_resources(run_id)

    assert [r.target for r in live] == [DEPLOYMENT, JOB]
    assert [r.detail for r in live] == ["model-a", "adapter"]
    assert live[1].up_at == _at(3)
    (gone,) = [r for r in await ledger.resources_of(run_id) if not r.live]
    assert (gone.target, gone.first_seen_at, gone.down_at) == (down_first, _at(1), _at(5))
    assert await ledger.live_resources(uuid.uuid4()) == []


async def test_an_outcome_ends_a_resource_unless_it_failed(ledger: Ledger) -> None:
    run_id = uuid.uuid4()
    await ledger.record_up(run_id, DEPLOYMENT, _at(1))
    await ledger.record_up(run_id, JOB, _at(2))

    reclaimed, failed = ReclaimResult(Outcome.RECLAIMED), ReclaimResult(Outcome.FAILED, "503 busy")
    await ledger.record_outcome(run_id, DEPLOYMENT, reclaimed, at=_at(3), task_id="t1")
    await ledger.record_outcome(run_id, JOB, failed, at=_at(3), task_id="t1")

    (still,) = await ledger.live_resources()
    assert (still.target, still.outcome, still.error) == (JOB, Outcome.FAILED, "503 busy")
    records = {r.target.key: r for r in await ledger.resources_of(run_id)}
    assert records[DEPLOYMENT.key].outcome is Outcome.RECLAIMED
    assert (records[DEPLOYMENT.key].outcome_at, records[DEPLOYMENT.key].outcome_task) == (
        _at(3),
        "t1",
    )


async def test_quiet_runs_are_those_without_recent_activity(ledger: Ledger) -> None:
    quiet, active = uuid.uuid4(), uuid.uuid4()
    await ledger.touch_run(RunFacts(quiet, _at(0), "nim.up"))
    await ledger.touch_run(RunFacts(active, _at(0), "nim.up"))
    await ledger.mark_active(active, _at(30))
    await ledger.mark_active(active, _at(20))

    found = await ledger.quiet_runs([quiet, active, uuid.uuid4()], _at(25))

    assert [r.run_id for r in found] == [quiet]
    assert await ledger.quiet_runs([], _at(25)) == []


async def test_history_is_written_once_per_entry_in_time_order(ledger: Ledger) -> None:
    run_id = uuid.uuid4()
    entries = [
        HistoryEntry(run_id=run_id, entry_id=f"e{m}", at=_at(m), kind="nim.up", summary=f"m{m}")
        for m in (3, 1, 2)
    ]
    for entry in [*entries, entries[0]]:
        await ledger.add_history(entry)

    assert [e.entry_id for e in await ledger.history(run_id)] == ["e1", "e2", "e3"]


async def test_tasks_are_recorded_once_and_run_in_order(ledger: Ledger) -> None:
    run_id = uuid.uuid4()
    tasks = [
        ReclaimTask(
            task_id=f"t{m}",
            run_id=run_id if m else None,
            trigger=ReclaimTrigger.STALE_RUN,
            reason="why",
            targets=(DEPLOYMENT,) if not m else None,
            created_at=_at(m),
        )
        for m in (2, 0, 1)
    ]
    added = [await ledger.add_task(task) for task in [*tasks, tasks[0]]]

    assert added == [True, True, True, False]
    assert [t.task_id for t in await ledger.pending_tasks(2)] == ["t0", "t1"]
    assert (await ledger.pending_tasks(10))[0] == tasks[1]
    await ledger.save_report("t1", "report")
    await ledger.finish_task("t2")
    assert [(t.task_id, t.report) for t in await ledger.pending_tasks(10)] == [
        ("t0", None),
        ("t1", "report"),
    ]
    assert await ledger.has_pending_task(run_id)
    await ledger.finish_task("t1")
    assert not await ledger.has_pending_task(run_id)


async def test_the_latest_shutdown_is_kept(ledger: Ledger) -> None:
    assert await ledger.latest_shutdown() is None
    marks = [ShutdownMark(event_id=f"s{m}", at=_at(m), cause="{}", reason="r") for m in (5, 9, 1)]
    for mark in marks:
        await ledger.record_shutdown(mark)

    assert await ledger.latest_shutdown() == marks[1]


async def test_orphans_keep_their_first_sighting_while_they_stay(ledger: Ledger) -> None:
    await ledger.sight_orphans([DEPLOYMENT, JOB], _at(0))
    seen = await ledger.sight_orphans([DEPLOYMENT], _at(5))
    assert seen == {DEPLOYMENT.key: _at(0)}

    again = await ledger.sight_orphans([DEPLOYMENT, JOB], _at(6))
    assert again == {DEPLOYMENT.key: _at(0), JOB.key: _at(6)}
    await ledger.forget_orphans([DEPLOYMENT.key])
    assert await ledger.sight_orphans([DEPLOYMENT], _at(7)) == {DEPLOYMENT.key: _at(7)}


async def test_stopped_instances_are_kept_once_newest_first(ledger: Ledger) -> None:
    work = InFlightWork(run_id=uuid.uuid4(), kind="deployment", resource_id="dep-a")
    instances = [
        StoppedInstance(
            event_id=f"i{m}",
            service="nim-manager",
            instance=f"host-{m}",
            stopped_at=_at(m),
            in_flight=(InFlightEntry(run_id=work.run_id, kind=work.kind, resource_id="dep-a"),),
        )
        for m in (1, 2)
    ]
    for instance in [*instances, instances[0]]:
        await ledger.record_stopping(instance)

    assert await ledger.stopped_instances(10) == instances[::-1]
    assert await ledger.stopped_instances(1) == instances[1:]
