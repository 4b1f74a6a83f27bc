"""A workload fed only by a real agent runtime: production calls made through NeMo Relay (each
an agent run of its own, the call made by `nemo_relay.llm.execute`), shipped by the
flywheel-relay subscriber to the flywheel's own intake, indexed, and taken through a whole run
to a leaderboard. No line of this workload comes from the log shipper."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from flywheel_contracts.run_config import DEMO_CANDIDATES, EvalType, RunOverrides
from flywheel_contracts.traffic import ROUTER, TrafficConfig, generate_lines
from flywheel_localstack.config import REPO_ROOT
from flywheel_localstack.producers import TOOLS, producers_python
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_localstack.services import wait_indexed
from tests.support.runs import assert_scored, completed, expected_entries, start_run
from tests.support.world import event_tap, flywheel_setup, private_emulator, running_flywheel

pytestmark = pytest.mark.e2e

RECORDS = 300
CANDIDATE = DEMO_CANDIDATES[1]  # not customized: the run is about where the records came from
OVERRIDES = RunOverrides(candidates=(CANDIDATE,), random_seed=7, eval_size=20)


async def test_a_workload_fed_only_through_nemo_relay_completes_with_a_leaderboard(
    stack: StackHandle, tmp_path: Path
) -> None:
    for folder in ("nmp", "services"):
        (tmp_path / folder).mkdir()
    with private_emulator(tmp_path / "nmp") as emulator:
        setup = flywheel_setup(stack, emulator, "e2e-relay")
        client = setup.name
        traffic = tmp_path / "production.jsonl"
        lines = generate_lines(
            RECORDS, 17, TrafficConfig(client_ids=(client,), workloads=(ROUTER,))
        )
        traffic.write_text("\n".join(lines) + "\n")
        with running_flywheel(setup, tmp_path / "services") as flywheel:
            replayed = await asyncio.to_thread(
                subprocess.run,
                [
                    str(producers_python()),
                    str(TOOLS / "relay_replay.py"),
                    "--records",
                    str(traffic),
                    "--url",
                    flywheel["ingest"].url,
                ],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=REPO_ROOT,
                check=False,
            )
            assert replayed.returncode == 0, replayed.stderr[-4000:]
            shipped = json.loads(replayed.stdout.strip().splitlines()[-1])
            assert shipped["calls"] == shipped["shipped"] == RECORDS, shipped

            wait_indexed(setup.servers.elasticsearch_url, setup.index, client, RECORDS, 180.0)
            async with event_tap(setup) as tap:
                run_id = await start_run(setup, ROUTER, client, OVERRIDES)
                result = await completed(tap, run_id)

            async with httpx.AsyncClient(timeout=30) as es:
                found = await es.post(
                    f"{setup.servers.elasticsearch_url}/{setup.index}/_search",
                    json={"size": 1, "query": {"term": {"client_id": client}}},
                )
            stored = found.json()["hits"]["hits"][0]["_source"]

    assert stored["metadata"]["producer"] == "nemo-relay"
    assert stored["workload_id"] == ROUTER
    assert_scored(
        result,
        expected_entries((CANDIDATE,), (EvalType.BASE, EvalType.ICL)),
        "function_name_and_args_accuracy",
    )
