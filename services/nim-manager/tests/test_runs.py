"""Acceptance 1 and 4 against the real stack and a private emulator, nim-manager in-process and
the test standing in for the evaluator: three one-GPU candidates deploy together on a budget of
four and strictly one after another on a budget of one (the emulator's own timeline shows it);
cancelling mid-deployment leaves nothing of the run deployed."""

import itertools
from uuid import uuid4

import pytest

from flywheel_contracts.events import (
    NimFailed,
    NimFailureReason,
    RunFailed,
    RunFailureReason,
)
from flywheel_contracts.runtime.testing import eventually
from flywheel_nim_manager.testing.fakes import cancel_event, candidate, ready_event
from flywheel_nim_manager.testing.process import TAPPED, EventTap, Harness, serving

pytestmark = pytest.mark.integration

DEPLOY_SECONDS = 1.5
THREE = [
    candidate("meta/llama-3.2-1b-instruct", price_per_1k_tokens=0.0001),
    candidate("meta/llama-3.2-3b-instruct", price_per_1k_tokens=0.0002),
    candidate("meta/llama-3.1-8b-instruct", price_per_1k_tokens=0.0003),
]


async def test_four_gpus_deploy_three_candidates_together(harness: Harness) -> None:
    harness.emulator.set_deploy_seconds(DEPLOY_SECONDS)
    run = await harness.complete_run(THREE, gpu_budget=4)
    spans = list(harness.emulator.spans(run.run_id).values())
    assert len(spans) == 3
    # Every deployment started before any was ready: they were starting at the same time.
    assert max(s["started"] for s in spans) < min(s["ready"] for s in spans)
    assert all("deleted" in s for s in spans)
    assert harness.emulator.live(run.run_id) == []
    assert run.removed == 3
    board = run.completed.leaderboard
    assert len(board.entries) == 6
    assert board.recommendation.candidate_model == "meta/llama-3.2-1b-instruct"


async def test_one_gpu_deploys_three_candidates_one_after_another(harness: Harness) -> None:
    harness.emulator.set_deploy_seconds(DEPLOY_SECONDS)
    run = await harness.complete_run(THREE, gpu_budget=1)
    spans = sorted(harness.emulator.spans(run.run_id).values(), key=lambda s: s["requested"])
    assert len(spans) == 3
    for earlier, later in itertools.pairwise(spans):
        assert later["requested"] >= earlier["deleted"], "strictly one after another"
    assert run.elapsed_s >= 3 * DEPLOY_SECONDS


async def test_cancelling_mid_deployment_leaves_no_deployment_of_the_run(
    harness: Harness,
) -> None:
    harness.emulator.set_deploy_seconds(30)  # far longer than the test: cancelled while pending
    run_id = uuid4()
    try:
        async with (
            EventTap(harness.kafka, TAPPED) as tap,
            serving(harness.settings(gpu_budget=1)),
        ):
            await harness.publish(ready_event(run_id, THREE[:2]))
            await eventually(lambda: len(harness.emulator.timeline(run_id)) > 0)
            await harness.publish(cancel_event(run_id))
            [failed] = await tap.wait_for("run.failed", run_id, timeout_s=30)
            [nim_failed] = await tap.wait_for("nim.failed", run_id)
    finally:
        harness.emulator.set_deploy_seconds(0)
    assert isinstance(failed.payload, RunFailed)
    assert failed.payload.reason is RunFailureReason.CANCELLED
    assert isinstance(nim_failed.payload, NimFailed)
    assert nim_failed.payload.reason is NimFailureReason.CANCELLED
    assert harness.emulator.live(run_id) == []
    events = [e["event"] for e in harness.emulator.timeline(run_id)]
    assert events[0] == "requested" and events[-1] == "deleted"
    assert "ready" not in events
    assert len(harness.emulator.spans(run_id)) == 1, "the queued candidate was never deployed"
    assert tap.of("nim.up", run_id) == []
