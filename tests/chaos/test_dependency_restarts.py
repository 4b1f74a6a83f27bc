"""A dependency restarted under a long operation: Elasticsearch while datasets reads 50,000
records for a run. The read loses its cursor (a restarted node forgets its scrolls and points in
time) and must start again rather than fail the run or build on a partial read: the run
completes, having read every record once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from flywheel_contracts.runtime.testing import eventually
from flywheel_contracts.traffic import ROUTER
from tests.chaos.harness import CANDIDATES, RUN_TIMEOUT_S, Harness
from tests.chaos.report import ChaosReport
from tests.chaos.traffic import Shipments, generate, indexed_exactly

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]

LARGE_RECORDS = 50_000
LARGE_SEED = 13
LARGE_INDEX_TIMEOUT_S = 900.0
# The demo's candidates without training: the read is what this scenario is about, and the
# emulator's stand-in fit of a 40,000-record training file (250 MB) would add a minute or more on
# two busy cores to a scenario that also runs in CI.
UNCUSTOMIZED = tuple(c.model_copy(update={"customization_enabled": False}) for c in CANDIDATES)
# A build over 50,000 records (deduplication, splits, in-context examples) takes a few minutes on
# two busy cores, besides the read it repeats.
LARGE_RUN_TIMEOUT_S = 900.0
# The restart strikes at most this long after the read opened its cursor: well inside a read of
# this size (several seconds on two cores).
MAX_STRIKE_DELAY_S = 1.0


def open_cursors(elasticsearch_url: str) -> int:
    """Search contexts open on the cluster: the scrolls and points in time being read."""
    response = httpx.get(
        f"{elasticsearch_url}/_nodes/stats/indices/search",
        params={"filter_path": "nodes.*.indices.search.open_contexts"},
        timeout=10,
    )
    if response.status_code != 200:
        return 0
    nodes = response.json().get("nodes", {})
    return sum(int(node["indices"]["search"]["open_contexts"]) for node in nodes.values())


async def test_a_run_completes_when_elasticsearch_restarts_during_a_50k_record_read(
    chaos: ChaosReport, harness: Harness, shipments: Shipments, tmp_path: Path
) -> None:
    scenario = chaos.scenario("restart elasticsearch during a 50k-record read")
    rng = chaos.rng(scenario.name)
    setup = harness.setup
    url = setup.servers.elasticsearch_url
    batch = generate(
        tmp_path, f"{setup.name}-large", LARGE_RECORDS, LARGE_SEED, workloads=(ROUTER,)
    )
    for part in batch.parts:
        shipments.ship(part)
    ingest_s = await asyncio.to_thread(indexed_exactly, setup, batch, LARGE_INDEX_TIMEOUT_S)
    assert open_cursors(url) == 0, "a search context was open before the run"

    run = await harness.request_run(batch, limit=LARGE_RECORDS, candidates=UNCUSTOMIZED)
    await eventually(lambda: open_cursors(url) > 0, timeout_s=RUN_TIMEOUT_S)
    opened_s = time.monotonic() - run.requested_at
    delay_s = round(rng.uniform(0, MAX_STRIKE_DELAY_S), 2)
    await asyncio.sleep(delay_s)
    reading = open_cursors(url)
    assert reading > 0, f"the read ended within {delay_s}s: nothing to interrupt"
    assert not harness.tap.of("dataset.ready", run.run_id)
    down_s = round(rng.uniform(1.0, 4.0), 2)
    back_s = await harness.restart("elasticsearch").strike(down_s)
    scenario.inject(
        f"{LARGE_RECORDS:,} records indexed in {ingest_s:.0f}s; the run's read opened its cursor "
        f"{opened_s:.1f}s after the request; elasticsearch restarted {delay_s:.2f}s later "
        f"with {reading} cursor(s) open, down {down_s:.2f}s, usable again {back_s:.1f}s later "
        f"(seed {chaos.seed})"
    )
    await harness.verify_run(scenario, run, LARGE_RUN_TIMEOUT_S)
    scenario.passed = True
