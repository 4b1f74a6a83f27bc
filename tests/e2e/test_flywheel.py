"""The whole flywheel end to end: six services as processes, the real stack, a private NMP
emulator; every check goes through the events, the emulator's state and the janitor's ledger."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from flywheel_contracts.cli.render import console, leaderboard_view
from flywheel_contracts.cli.requests import run_cancelled, run_requested
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import (
    ReclaimTrigger,
    ResourcesReclaimed,
    RunCompleted,
    RunFailed,
    RunFailureReason,
)
from flywheel_contracts.run_config import EvalType, RunOverrides
from flywheel_contracts.runtime import KafkaSettings, Publisher
from flywheel_contracts.runtime.testing import eventually
from flywheel_contracts.traffic import ROUTER
from flywheel_localstack.demo import DEMO_CANDIDATES
from flywheel_localstack.services import Flywheel, FlywheelSetup
from flywheel_nim_manager.testing.process import EventTap
from tests.e2e.conftest import Traffic

pytestmark = pytest.mark.e2e

# The demo's run: three one-GPU candidates, the first also customized.
CANDIDATES = DEMO_CANDIDATES
CUSTOMIZED = next(c.model_name for c in CANDIDATES if c.customization_enabled)
RUN_TIMEOUT_S = 150.0
UNFINISHED_JOB = frozenset({"created", "pending", "running"})


async def request_run(setup: FlywheelSetup, envelope: Envelope[Any]) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=setup.servers.kafka_bootstrap, topic_prefix=setup.topic_prefix
    )
    publisher = Publisher(kafka, client_id=f"e2e-client-{uuid.uuid4().hex[:6]}")
    publisher.start()
    try:
        await publisher.publish(envelope)
    finally:
        await publisher.close()


async def start_run(setup: FlywheelSetup, workload_id: str, client_id: str) -> UUID:
    overrides = RunOverrides(candidates=CANDIDATES, random_seed=7, epochs=1)
    envelope = run_requested(workload_id, client_id, overrides, requested_by="e2e")
    await request_run(setup, envelope)
    assert envelope.run_id is not None
    return envelope.run_id


async def outcome(tap: EventTap, run_id: UUID, timeout_s: float = RUN_TIMEOUT_S) -> Envelope[Any]:
    """The run's terminal event, run.completed or run.failed."""
    ended: list[Envelope[Any]] = []

    def terminal() -> bool:
        ended[:] = tap.of("run.completed", run_id) + tap.of("run.failed", run_id)
        return bool(ended)

    await eventually(terminal, timeout_s=timeout_s)
    return ended[0]


def live_deployments(emulator: httpx.Client) -> list[str]:
    return list(emulator.get("/emulator/state").json()["deployments"])


def unfinished_jobs(emulator: httpx.Client) -> list[str]:
    state = emulator.get("/emulator/state").json()
    jobs = {**state["customization_jobs"], **state["evaluation_jobs"]}
    return [key for key, job in jobs.items() if job["status"] in UNFINISHED_JOB]


def live_in_ledger(flywheel: Flywheel, run_id: UUID) -> list[str]:
    """The run's resources the janitor still holds live."""
    response = httpx.get(f"{flywheel['janitor'].url}/ledger/runs/{run_id}", timeout=5)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return [r["ref"] for r in response.json()["resources"] if r["live"]]


async def assert_nothing_left(emulator: httpx.Client, flywheel: Flywheel, run_id: UUID) -> None:
    await eventually(lambda: not live_deployments(emulator), timeout_s=30)
    await eventually(lambda: not unfinished_jobs(emulator), timeout_s=30)
    await eventually(lambda: not live_in_ledger(flywheel, run_id), timeout_s=30)


async def test_a_tool_calling_run_ends_with_every_candidate_on_the_leaderboard(
    setup: FlywheelSetup,
    flywheel: Flywheel,
    traffic: Traffic,
    tap: EventTap,
    emulator: httpx.Client,
) -> None:
    started = time.monotonic()
    run_id = await start_run(setup, ROUTER, traffic.client_id)
    ended = await outcome(tap, run_id)
    assert isinstance(ended.payload, RunCompleted), ended.payload
    print(f"run.completed {time.monotonic() - started:.1f}s after run.requested")
    console().print(leaderboard_view(run_id, ended.payload))

    entries = {(e.candidate_model, e.eval_type): e for e in ended.payload.leaderboard.entries}
    expected = {(c.model_name, t) for c in CANDIDATES for t in (EvalType.BASE, EvalType.ICL)}
    expected.add((CUSTOMIZED, EvalType.CUSTOMIZED))
    assert expected <= set(entries)
    for key in expected:
        entry = entries[key]
        assert entry.error is None, (key, entry.error)
        names = {score.name for score in entry.scores}
        assert "function_name_and_args_accuracy" in names, (key, names)
    uncustomized = {c.model_name for c in CANDIDATES if not c.customization_enabled}
    assert not {m for m, t in entries if t is EvalType.CUSTOMIZED} & uncustomized
    await tap.wait_for("nim.down", run_id, count=len(CANDIDATES))
    assert not tap.of("nim.failed", run_id)
    await assert_nothing_left(emulator, flywheel, run_id)


async def test_a_run_over_an_unknown_workload_fails_at_the_datasets_stage(
    setup: FlywheelSetup, flywheel: Flywheel, traffic: Traffic, tap: EventTap
) -> None:
    run_id = await start_run(setup, f"no-such-workload-{uuid.uuid4().hex[:6]}", traffic.client_id)
    ended = await outcome(tap, run_id, timeout_s=60)
    assert isinstance(ended.payload, RunFailed), ended.payload
    assert ended.payload.reason is RunFailureReason.DATASET_FAILED
    assert tap.of("dataset.failed", run_id)
    assert not tap.of("nim.up", run_id)


@pytest.fixture
def slow_training(emulator: httpx.Client) -> Iterator[None]:
    """Training takes long enough for a cancel to find the run midway."""
    timings = emulator.get("/emulator/timings").json()
    emulator.put("/emulator/timings", json={**timings, "training_seconds_per_epoch": 120.0})
    try:
        yield
    finally:
        emulator.put("/emulator/timings", json=timings)


@pytest.mark.usefixtures("slow_training")
async def test_a_run_cancelled_midway_leaves_nothing_behind(
    setup: FlywheelSetup,
    flywheel: Flywheel,
    traffic: Traffic,
    tap: EventTap,
    emulator: httpx.Client,
) -> None:
    run_id = await start_run(setup, ROUTER, traffic.client_id)
    await tap.wait_for("customization.started", run_id, timeout_s=90)
    assert live_deployments(emulator), "nothing deployed: the cancel would not be midway"
    assert unfinished_jobs(emulator), "no job running: the cancel would not be midway"

    cancelled_at = time.monotonic()
    await request_run(setup, run_cancelled(run_id, reason="e2e cancel", requested_by="e2e"))
    [reclaimed] = await tap.wait_for(
        "resources.reclaimed",
        run_id,
        timeout_s=30,
        where=lambda e: e.payload.trigger is ReclaimTrigger.RUN_CANCELLED,
    )
    print(f"resources.reclaimed {time.monotonic() - cancelled_at:.1f}s after run.cancelled")
    assert isinstance(reclaimed.payload, ResourcesReclaimed)
    assert not reclaimed.payload.failed, reclaimed.payload.failed
    ended = await outcome(tap, run_id, timeout_s=30)
    assert isinstance(ended.payload, RunFailed), ended.payload
    assert ended.payload.reason is RunFailureReason.CANCELLED
    await assert_nothing_left(emulator, flywheel, run_id)
