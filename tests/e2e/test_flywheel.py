"""The whole flywheel end to end: six services as processes, the real stack, a private NMP
emulator; every check goes through the events, the emulator's state and the janitor's ledger."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from uuid import UUID

import httpx
import pytest

from flywheel_contracts.cli.bus import Record
from flywheel_contracts.cli.kafka import KafkaBus
from flywheel_contracts.cli.render import console, leaderboard_view
from flywheel_contracts.cli.requests import run_cancelled
from flywheel_contracts.cli.runs import read_run_events
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.events import (
    ReclaimTrigger,
    ResourcesReclaimed,
    RunCompleted,
    RunFailed,
    RunFailureReason,
)
from flywheel_contracts.report.charts import EVAL_COLORS, SAVING_COLOR
from flywheel_contracts.report.page import PRODUCTION_ROW_BACKGROUND
from flywheel_contracts.run_config import DEMO_CANDIDATES, RunOverrides, WorkloadType
from flywheel_contracts.traffic import CHAT, ROUTER
from flywheel_localstack.config import StackSettings
from flywheel_localstack.png import hex_rgb, read_png
from flywheel_localstack.reports import report_with_screenshot
from flywheel_localstack.services import Flywheel, FlywheelSetup
from flywheel_nim_manager.testing.process import EventTap
from tests.e2e.conftest import Traffic
from tests.support.emulator import live_deployments, unfinished_jobs
from tests.support.runs import (
    assert_nothing_left,
    assert_scored,
    completed,
    expected_entries,
    kafka,
    outcome,
    publish,
    start_run,
    unique,
)

pytestmark = pytest.mark.e2e

# The demo's run: three one-GPU candidates, the first also customized. The blueprint's 20
# evaluation records (the default is 100): the suite's 400 records hold ~110 chat records, too
# few for 100 evaluation conversations plus training. test_icl_defaults runs the defaults.
CANDIDATES = DEMO_CANDIDATES
OVERRIDES = RunOverrides(candidates=CANDIDATES, random_seed=7, epochs=1, eval_size=20)
TOOL_CALLING_METRICS = frozenset(
    {"function_name_accuracy", "function_name_and_args_accuracy", "tool_calling_correctness"}
)


async def start_demo_run(setup: FlywheelSetup, workload_id: str, client_id: str) -> UUID:
    return await start_run(setup, workload_id, client_id, OVERRIDES)


async def completed_demo_run(
    setup: FlywheelSetup, tap: EventTap, workload_id: str, client_id: str
) -> tuple[UUID, RunCompleted]:
    """Start the demo's run and wait for `run.completed`; prints how long it took, and the
    leaderboard."""
    started = time.monotonic()
    run_id = await start_demo_run(setup, workload_id, client_id)
    result = await completed(tap, run_id)
    print(f"run.completed {time.monotonic() - started:.1f}s after run.requested")
    console().print(leaderboard_view(run_id, result))
    return run_id, result


async def assert_every_deployment_ended_cleanly(
    tap: EventTap, emulator: httpx.Client, flywheel: Flywheel, run_id: UUID
) -> None:
    await tap.wait_for("nim.down", run_id, count=len(CANDIDATES))
    assert not tap.of("nim.failed", run_id)
    await assert_nothing_left(emulator, flywheel, [run_id])


async def test_a_tool_calling_run_ends_with_every_candidate_on_the_leaderboard(
    setup: FlywheelSetup,
    flywheel: Flywheel,
    traffic: Traffic,
    tap: EventTap,
    emulator: httpx.Client,
) -> None:
    run_id, result = await completed_demo_run(setup, tap, ROUTER, traffic.client_id)
    assert_scored(result, expected_entries(CANDIDATES), "function_name_and_args_accuracy")
    await assert_every_deployment_ended_cleanly(tap, emulator, flywheel, run_id)
    screenshot_the_report(setup, run_id)


def screenshot_the_report(setup: FlywheelSetup, run_id: UUID) -> None:
    """The run's HTML report, as `flywheel report --html` writes it from the run's topics, opened
    in a headless browser; both files stay in .stack/reports/e2e/ to be looked at."""

    def refuse(_record: Record, problem: InvalidEvent) -> None:
        raise AssertionError(f"an invalid event on the run's topics: {problem}")

    events = read_run_events(KafkaBus(kafka(setup)), run_id, refuse)
    # Tall enough for the whole leaderboard of three candidates in three evaluation types.
    files = report_with_screenshot(
        run_id, events, StackSettings().reports_dir / "e2e", window=(1280, 4800)
    )
    print(f"report {files.html}\nscreenshot {files.png}")
    colours = read_png(files.png).colours()
    for eval_type, colour in EVAL_COLORS.items():
        assert colours[hex_rgb(colour)] > 500, (
            f"the screenshot shows no {eval_type} bars: {files.png}"
        )
    # The answer: the production model's reference row and the savings against it.
    assert colours[hex_rgb(PRODUCTION_ROW_BACKGROUND)] > 2_000, f"no baseline row: {files.png}"
    assert colours[hex_rgb(SAVING_COLOR)] > 2_000, f"no savings bars: {files.png}"


async def test_a_generic_chat_run_is_judged_by_similarity(
    setup: FlywheelSetup,
    flywheel: Flywheel,
    traffic: Traffic,
    tap: EventTap,
    emulator: httpx.Client,
) -> None:
    """A workload without tools is generic: every evaluation, the customized one included
    (customization does not depend on the workload type), is scored by the judge's similarity."""
    run_id, result = await completed_demo_run(setup, tap, CHAT, traffic.client_id)
    [ready] = unique(tap.of("dataset.ready", run_id))
    print(f"generic chat dataset: {ready.payload.counts}")
    assert ready.payload.context.workload_type is WorkloadType.GENERIC
    entries = assert_scored(result, expected_entries(CANDIDATES), "similarity")
    for key, entry in entries.items():
        names = {score.name for score in entry.scores}
        assert not names & TOOL_CALLING_METRICS, (key, names)
    await assert_every_deployment_ended_cleanly(tap, emulator, flywheel, run_id)


async def test_a_run_over_an_unknown_workload_fails_at_the_datasets_stage(
    setup: FlywheelSetup, flywheel: Flywheel, traffic: Traffic, tap: EventTap
) -> None:
    run_id = await start_demo_run(
        setup, f"no-such-workload-{uuid.uuid4().hex[:6]}", traffic.client_id
    )
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
    run_id = await start_demo_run(setup, ROUTER, traffic.client_id)
    await tap.wait_for("customization.started", run_id, timeout_s=90)
    assert live_deployments(emulator), "nothing deployed: the cancel would not be midway"
    assert unfinished_jobs(emulator), "no job running: the cancel would not be midway"

    cancelled_at = time.monotonic()
    cancel = run_cancelled(run_id, reason="e2e cancel", requested_by="e2e")
    await publish(setup, cancel)
    # One reclaim answers the cancel, however often Kafka redelivered it. A deployment that
    # comes up after the cancel is reclaimed by a later report of its own (caused by its nim.up).
    [reclaimed] = unique(
        await tap.wait_for(
            "resources.reclaimed",
            run_id,
            timeout_s=30,
            where=lambda e: (
                e.payload.trigger is ReclaimTrigger.RUN_CANCELLED
                and e.causation_id == cancel.event_id
            ),
        )
    )
    print(f"resources.reclaimed {time.monotonic() - cancelled_at:.1f}s after run.cancelled")
    assert isinstance(reclaimed.payload, ResourcesReclaimed)
    assert not reclaimed.payload.failed, reclaimed.payload.failed
    ended = await outcome(tap, run_id, timeout_s=30)
    assert isinstance(ended.payload, RunFailed), ended.payload
    assert ended.payload.reason is RunFailureReason.CANCELLED
    await assert_nothing_left(emulator, flywheel, [run_id])
    late = [
        e for e in unique(tap.of("resources.reclaimed", run_id)) if e.event_id != reclaimed.event_id
    ]
    assert all(not e.payload.failed for e in late), [e.payload.failed for e in late]
