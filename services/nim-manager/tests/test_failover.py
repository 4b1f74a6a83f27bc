"""Acceptance 3 with nim-manager as real processes: SIGKILL while a deployment is pending and a
restart deploy nothing twice and the run completes; of two instances only the lease holder
schedules, and killing it hands scheduling to the other."""

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from pymongo import MongoClient

from flywheel_contracts.runtime.testing import eventually
from flywheel_nim_manager.repository import CANDIDATES
from flywheel_nim_manager.testing.fakes import candidate, ready_event
from flywheel_nim_manager.testing.process import (
    TAPPED,
    EventTap,
    Harness,
    NimManagerProcess,
    StandIns,
)

pytestmark = pytest.mark.integration

LEASE_TTL_S = 2.0
TWO = [candidate("meta/llama-3.2-1b-instruct"), candidate("meta/llama-3.2-3b-instruct")]


def _process(harness: Harness, tmp_path: Path, name: str) -> NimManagerProcess:
    env = harness.env(
        gpu_budget=4,
        instance_id=f"{name}-{uuid4().hex[:6]}",
        tick_interval_s=0.1,
        lease_ttl_s=LEASE_TTL_S,
        # A killed member holds its partitions until its session expires: keep that short.
        kafka__session_timeout_ms=6000,
    )
    return NimManagerProcess(env, tmp_path / f"{name}.log")


def _granted_by(harness: Harness, run_id: UUID) -> set[str]:
    client: MongoClient[dict[str, Any]]
    with MongoClient(harness.mongo_url) as client:
        docs: list[dict[str, Any]] = list(
            client[harness.database][CANDIDATES].find({"run_id": str(run_id)})
        )
    return {doc["granted_by"] for doc in docs}


async def test_sigkill_while_pending_then_restart_deploys_once_and_completes(
    harness: Harness, tmp_path: Path
) -> None:
    harness.emulator.set_deploy_seconds(4)  # still pending when the process dies
    run_id = uuid4()
    first = _process(harness, tmp_path, "first")
    second = _process(harness, tmp_path, "second")
    try:
        async with EventTap(harness.kafka, TAPPED) as tap, StandIns(tap, harness.kafka):
            first.start()
            await harness.publish(ready_event(run_id, TWO))
            await eventually(
                lambda: (
                    sum(e["event"] == "requested" for e in harness.emulator.timeline(run_id)) == 2
                ),
                timeout_s=30,
            )
            assert tap.of("nim.up", run_id) == []
            first.kill()
            second.start()
            await tap.wait_for("run.completed", run_id, timeout_s=60)
            ups = await tap.wait_for("nim.up", run_id, count=2)
    finally:
        first.kill()
        second.stop()
        harness.emulator.set_deploy_seconds(0)
    requested = Counter(
        e["id"] for e in harness.emulator.timeline(run_id) if e["event"] == "requested"
    )
    assert sorted(requested.values()) == [1, 1], "no deployment was requested twice"
    assert len({up.payload.candidate.model_name for up in ups}) == 2
    assert len({up.event_id for up in tap.of("nim.up", run_id)}) == 2
    assert harness.emulator.live(run_id) == []


async def test_only_the_lease_holder_schedules_and_a_standby_takes_over(
    harness: Harness, tmp_path: Path
) -> None:
    harness.emulator.set_deploy_seconds(0)
    one, two = _process(harness, tmp_path, "one"), _process(harness, tmp_path, "two")
    try:
        async with EventTap(harness.kafka, TAPPED) as tap, StandIns(tap, harness.kafka):
            # Started side by side: the slow part is the interpreter importing its libraries.
            await asyncio.gather(asyncio.to_thread(one.start), asyncio.to_thread(two.start))
            await eventually(
                lambda: {one.scheduler()["leader"], two.scheduler()["leader"]} == {True, False}
            )
            leader, standby = (one, two) if one.scheduler()["leader"] else (two, one)
            leader_id = leader.scheduler()["instance"]
            assert standby.scheduler()["holder"] == leader_id

            first_run = uuid4()
            await harness.publish(ready_event(first_run, TWO))
            await tap.wait_for("run.completed", first_run, timeout_s=60)
            assert _granted_by(harness, first_run) == {leader_id}

            leader.kill()
            killed_at = time.monotonic()
            await eventually(lambda: standby.scheduler()["leader"], timeout_s=LEASE_TTL_S + 10)
            handover = time.monotonic() - killed_at
            second_run = uuid4()
            await harness.publish(ready_event(second_run, TWO))
            await tap.wait_for("run.completed", second_run, timeout_s=60)
            assert _granted_by(harness, second_run) == {standby.scheduler()["instance"]}
    finally:
        one.stop()
        two.stop()
    print(f"\nscheduler handover after SIGKILL: {handover:.2f}s (lease ttl {LEASE_TTL_S}s)")
