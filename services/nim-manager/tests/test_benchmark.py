"""Benchmark (`make bench`): three one-GPU candidates on a 4-GPU budget finish in about the time
of one, not three as on a 1-GPU budget. Prints the wall times from dataset.ready to
run.completed, against a private emulator whose deployments take DEPLOY_SECONDS."""

import pytest

from flywheel_nim_manager.testing.fakes import candidate
from flywheel_nim_manager.testing.process import Harness

pytestmark = pytest.mark.benchmark

DEPLOY_SECONDS = 3.0
THREE = [
    candidate("meta/llama-3.2-1b-instruct"),
    candidate("meta/llama-3.2-3b-instruct"),
    candidate("meta/llama-3.1-8b-instruct"),
]


async def test_three_candidates_on_four_gpus_take_the_time_of_one(harness: Harness) -> None:
    harness.emulator.set_deploy_seconds(DEPLOY_SECONDS)
    try:
        packed = await harness.complete_run(THREE, gpu_budget=4)
        serial = await harness.complete_run(THREE, gpu_budget=1)
    finally:
        harness.emulator.set_deploy_seconds(0)
    print(
        f"\nscheduling: 3 one-GPU candidates, deployments taking {DEPLOY_SECONDS:g}s each"
        f"\n  4-GPU budget: {packed.elapsed_s:6.2f}s  ({packed.elapsed_s / DEPLOY_SECONDS:.2f}x one)"
        f"\n  1-GPU budget: {serial.elapsed_s:6.2f}s  ({serial.elapsed_s / DEPLOY_SECONDS:.2f}x one)"
        f"\n  speed-up: {serial.elapsed_s / packed.elapsed_s:.2f}x"
    )
    assert packed.elapsed_s < 2 * DEPLOY_SECONDS < 3 * DEPLOY_SECONDS <= serial.elapsed_s
