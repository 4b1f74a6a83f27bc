"""Five runs at once on a 4-GPU budget: every run completes, the GPUs held in NMP by deployments
and training jobs together never exceed the budget, no candidate is deployed twice, and nothing
is left. GPU use is read from the emulator's timeline (exact), not polled."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

import httpx
import pytest

from flywheel_contracts.run_config import DEMO_CANDIDATES, RunOverrides
from flywheel_contracts.traffic import CHAT, ROUTER
from flywheel_localstack.services import Flywheel, FlywheelSetup
from flywheel_nim_manager.conductor import deployment_name
from flywheel_nim_manager.testing.process import EventTap
from tests.e2e.conftest import Traffic
from tests.support.emulator import deployment_requests, holdings, peak_gpus, timeline
from tests.support.runs import (
    assert_nothing_left,
    assert_scored,
    completed,
    expected_entries,
    publish,
    run_request,
    unique,
)

pytestmark = pytest.mark.e2e

RUNS = 5
# The demo's candidates with the largest on two GPUs: a run wants 1 + 1 (training) + 1 + 2 = 5
# GPUs, more than the whole budget, and five runs want five times that.
CANDIDATES = (*DEMO_CANDIDATES[:-1], DEMO_CANDIDATES[-1].model_copy(update={"gpus": 2}))
OVERRIDES = RunOverrides(
    candidates=CANDIDATES, eval_size=6, icl_max_examples=2, random_seed=7, epochs=1
)
# Both kinds of workload, so their evaluations compete for the same deployments' budget.
WORKLOADS = {ROUTER: "function_name_and_args_accuracy", CHAT: "similarity"}
TIMEOUT_S = 170.0


async def test_five_concurrent_runs_share_the_gpu_budget_and_all_complete(
    setup: FlywheelSetup,
    flywheel: Flywheel,
    traffic: Traffic,
    tap: EventTap,
    emulator: httpx.Client,
) -> None:
    budget = setup.gpu_budget
    assert sum(c.gpus + c.customization_enabled * c.customization_gpus for c in CANDIDATES) > budget
    requests = [
        run_request(workload, traffic.client_id, OVERRIDES)
        for workload in itertools.islice(itertools.cycle(WORKLOADS), RUNS)
    ]
    runs = {r.run_id: r.payload.workload_id for r in requests if r.run_id is not None}
    assert len(runs) == RUNS

    started = time.monotonic()
    await publish(setup, *requests)
    results = await asyncio.gather(*(completed(tap, run_id, TIMEOUT_S) for run_id in runs))
    print(f"{RUNS} runs completed {time.monotonic() - started:.1f}s after run.requested")

    for (run_id, workload), result in zip(runs.items(), results, strict=True):
        assert_scored(result, expected_entries(CANDIDATES), WORKLOADS[workload])
        served = Counter(e.payload.candidate.model_name for e in unique(tap.of("nim.up", run_id)))
        assert served == {c.model_name: 1 for c in CANDIDATES}, (run_id, served)
        assert not tap.of("nim.failed", run_id)
    await assert_nothing_left(emulator, flywheel, runs)

    events = timeline(emulator)
    peak = peak_gpus(events)
    print(f"peak GPU use in NMP: {peak.gpus} of a budget of {budget}: {peak.holders}")
    assert peak.gpus <= budget, peak

    # Deployments are named after their run and candidate, so the timeline tells whose they are.
    owner = {deployment_name(run_id, c.model_name): run_id for run_id in runs for c in CANDIDATES}
    runs_at_once = max(
        len({owner[name] for name in map(_name, held) if name in owner})
        for held in holdings(events)
    )
    # Not asserted: one run's candidates fill the budget exactly, so whether a later run starts
    # before an earlier one has released everything depends on when the earlier one's
    # evaluations end (in fast mode they can all end within one reconcile cycle).
    print(f"at most {runs_at_once} runs held GPUs at once")
    requested = {_name(ident): n for ident, n in deployment_requests(events).items()}
    assert {name: requested.get(name, 0) for name in owner} == dict.fromkeys(owner, 1)


def _name(ident: str) -> str:
    """`deployment:namespace/name` or `namespace/name` -> `name`."""
    return ident.rsplit("/", 1)[-1]
