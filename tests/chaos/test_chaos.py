"""The chaos suite: a service SIGKILLed, Kafka or Elasticsearch restarted, at a seeded random
moment of a run or of an ingest; every run still completes, with no duplicate deployment, job or
terminal event, no leaked resource and no lost record. Each scenario reports what it injected
and what it checked (the "chaos report" section at the end of the session)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flywheel_contracts.runtime.testing import eventually
from flywheel_localstack.services import indexed
from tests.chaos.faults import REQUESTED, Window, choose, reach
from tests.chaos.harness import RUN_TIMEOUT_S, Harness, Outage
from tests.chaos.report import ChaosReport
from tests.chaos.traffic import Batch, Shipments, generate, indexed_exactly

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]

# When a service has work in hand: right after it was handed some, or produced some. Datasets
# builds a run's datasets within a second or so, hence its short delay.
KILL_WINDOWS: dict[str, Window] = {
    "datasets": Window((REQUESTED, "dataset.ready"), max_delay_s=0.6),
    "nim-manager": Window(
        ("dataset.ready", "nim.up", "customization.started", "eval.done", "customization.done")
    ),
    "evaluator": Window(("nim.up", "eval.started", "eval.done", "customization.done")),
    "customizer": Window(("nim.up", "customization.started")),
    "janitor": Window((REQUESTED, "nim.up", "eval.started", "run.completed")),
}
KAFKA_WINDOW = Window(("dataset.ready", "nim.up", "customization.started", "eval.started"))
INGEST_RECORDS = 400
INGEST_TRAFFIC_SEED = 12
# The fault strikes this long at most after the second part was shipped, while it is in flight.
INGEST_IN_FLIGHT_S = 0.6


@pytest.mark.parametrize("service", list(KILL_WINDOWS))
async def test_a_run_completes_when_a_service_is_killed_midway(
    service: str, chaos: ChaosReport, harness: Harness, traffic: Batch
) -> None:
    await _fault_mid_run(chaos, harness, traffic, harness.crash(service), KILL_WINDOWS[service])


async def test_a_run_completes_across_a_kafka_restart(
    chaos: ChaosReport, harness: Harness, traffic: Batch
) -> None:
    await _fault_mid_run(chaos, harness, traffic, harness.restart("kafka"), KAFKA_WINDOW)


async def test_no_record_is_lost_when_ingest_is_killed_while_indexing(
    chaos: ChaosReport, harness: Harness, shipments: Shipments, tmp_path: Path
) -> None:
    await _fault_during_ingest(chaos, harness, shipments, tmp_path, harness.crash("ingest"))


async def test_no_record_is_lost_when_elasticsearch_restarts_during_ingest(
    chaos: ChaosReport, harness: Harness, shipments: Shipments, tmp_path: Path
) -> None:
    await _fault_during_ingest(
        chaos, harness, shipments, tmp_path, harness.restart("elasticsearch")
    )


async def _fault_mid_run(
    chaos: ChaosReport,
    harness: Harness,
    traffic: Batch,
    outage: Outage,
    window: Window,
) -> None:
    scenario = chaos.scenario(f"{outage.what} mid-run")
    trigger = choose(chaos.rng(scenario.name), window)
    run = await harness.request_run(traffic)
    await reach(trigger, harness.tap, run.run_id, RUN_TIMEOUT_S)
    moment = harness.moment(run)
    back_s = await outage.strike(trigger.down_s)
    scenario.inject(
        f"{outage.what} {trigger}: struck {moment}, usable again {back_s:.1f}s later "
        f"(seed {chaos.seed})"
    )
    await harness.verify_run(scenario, run)
    scenario.passed = True


async def _fault_during_ingest(
    chaos: ChaosReport,
    harness: Harness,
    shipments: Shipments,
    folder: Path,
    outage: Outage,
) -> None:
    """The records in three parts: the first is shipped and partly searchable, the second is
    shipped and in flight when the fault strikes, the third is shipped while the target is down.
    Then every record must be indexed exactly once, ingest must still serve, and a run over them
    must complete."""
    scenario = chaos.scenario(f"{outage.what} during ingest")
    rng = chaos.rng(scenario.name)
    setup = harness.setup
    client_id = f"{setup.name}-{outage.what.split()[-1]}"
    batch = generate(folder, client_id, INGEST_RECORDS, INGEST_TRAFFIC_SEED, parts=3)
    first, second, third = batch.parts
    threshold = rng.randint(1, batch.part_records[0])
    in_flight_s = round(rng.uniform(0, INGEST_IN_FLIGHT_S), 2)
    down_s = round(rng.uniform(1.0, 4.0), 2)
    url, index = setup.servers.elasticsearch_url, setup.index

    shipments.ship(first)
    await eventually(lambda: indexed(url, index, client_id) >= threshold, timeout_s=120)
    shipments.ship(second)
    await asyncio.sleep(in_flight_s)
    searchable = indexed(url, index, client_id)
    back_s = await outage.strike(down_s, meanwhile=lambda: shipments.ship(third))
    shipped = batch.part_records[0] + batch.part_records[1]
    scenario.inject(
        f"{outage.what} {in_flight_s:.2f}s after shipping the second part, with {searchable} "
        f"of the {shipped} records shipped so far searchable; the other "
        f"{batch.part_records[2]} shipped while down; down {down_s:.2f}s, usable again "
        f"{back_s:.1f}s later (seed {chaos.seed})"
    )
    seconds = await asyncio.to_thread(indexed_exactly, setup, batch)
    scenario.check(
        f"all {batch.records} records of {client_id} indexed exactly once "
        f"({seconds:.1f}s after the target was back)"
    )
    await harness.services_serve(scenario)
    run = await harness.request_run(batch)
    await harness.verify_run(scenario, run)
    scenario.passed = True
