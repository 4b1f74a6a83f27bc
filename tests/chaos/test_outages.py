"""What outlasts every retry, in the middle of a run: the database stopped for 45 s, Kafka
SIGKILLed and down for 60 s, the NMP emulator SIGKILLed and down for 20 s while candidates are
evaluated, a service SIGSTOPped for 90 s, and every class of poison written to
the run's lifecycle topics. Each outage is waited out: the run completes with every evaluation,
nothing is dead-lettered, nothing is done twice (the emulator's history) and nothing is left
behind. Each poison message ends in its topic's DLQ, once per consuming service, with its reason,
the run goes on as if it were not there, and a run started afterwards completes too.

The short faults of test_chaos.py fall inside librdkafka's and the clients' own retries; these
outlast them, so what they test is the kit's rule that an outage pauses work instead of failing
it (and that a woken process notices what changed while it slept)."""

from __future__ import annotations

import asyncio

import pytest

from flywheel_contracts.catalog import dlq_topic
from flywheel_contracts.catalog import topic as topic_spec
from flywheel_contracts.runtime.event_consumer import inbound
from flywheel_contracts.runtime.poison import KINDS
from flywheel_contracts.runtime.testing import read_topic
from tests.chaos.faults import Window, choose, reach
from tests.chaos.harness import RUN_TIMEOUT_S, Harness, Outage
from tests.chaos.report import ChaosReport
from tests.chaos.traffic import Batch

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]

# While every service has work in hand: datasets ready, deployments and training under way.
BUSY = Window(("dataset.ready", "nim.up", "customization.started", "eval.started"))
# While candidates are being evaluated (through the emulator's NIM proxy) and trained.
EVALUATING = Window(("eval.started",), max_delay_s=0.5)
# Read by every service between them; the run's own events of these types are still to come.
LIFECYCLE = ("run.cancelled", "nim.up", "customization.done", "eval.done")


async def test_a_run_completes_with_the_database_stopped_for_45_seconds(
    chaos: ChaosReport, harness: Harness, traffic: Batch
) -> None:
    await _long_outage(chaos, harness, traffic, harness.restart("mongo"), down_s=45)


async def test_a_run_completes_with_kafka_killed_and_down_for_60_seconds(
    chaos: ChaosReport, harness: Harness, traffic: Batch
) -> None:
    await _long_outage(chaos, harness, traffic, harness.kill_server("kafka"), down_s=60)


async def test_a_run_completes_with_the_platform_killed_and_down_for_20_seconds(
    chaos: ChaosReport, harness: Harness, traffic: Batch
) -> None:
    await _long_outage(
        chaos, harness, traffic, harness.kill_emulator(), down_s=20, window=EVALUATING
    )


@pytest.mark.parametrize("service", ["nim-manager", "evaluator"])
async def test_a_run_completes_with_a_service_frozen_for_90_seconds(
    service: str, chaos: ChaosReport, harness: Harness, traffic: Batch
) -> None:
    await _long_outage(chaos, harness, traffic, harness.freeze(service), down_s=90)


async def _long_outage(
    chaos: ChaosReport,
    harness: Harness,
    traffic: Batch,
    outage: Outage,
    down_s: float,
    window: Window = BUSY,
) -> None:
    scenario = chaos.scenario(f"{outage.what} for {down_s:.0f}s mid-run")
    trigger = choose(chaos.rng(scenario.name), window)
    before = harness.dead_letters()
    run = await harness.request_run(traffic)
    await reach(trigger, harness.tap, run.run_id, RUN_TIMEOUT_S)
    moment = harness.moment(run)
    back_s = await outage.strike(down_s)
    scenario.inject(
        f"{outage.what} {trigger.delay_s:.2f}s after {trigger.after}: struck {moment}, "
        f"usable again {back_s:.1f}s later (seed {chaos.seed})"
    )
    await harness.verify_run(scenario, run)
    after = harness.dead_letters()
    grown = {topic: after[topic] - before.get(topic, 0) for topic in after}
    assert not any(grown.values()), f"dead-lettered during the outage: {grown}"
    scenario.check(f"no dead letter in any of {len(after)} DLQs")
    scenario.passed = True


async def test_a_run_completes_with_every_poison_class_on_its_lifecycle_topics(
    chaos: ChaosReport, harness: Harness, traffic: Batch
) -> None:
    scenario = chaos.scenario("poison on lifecycle topics mid-run")
    before = harness.dead_letters()
    assert not any(before.values()), f"dead letters before the poison: {before}"
    run = await harness.request_run(traffic)
    await harness.tap.wait_for("dataset.ready", run.run_id, timeout_s=RUN_TIMEOUT_S)
    sent = await asyncio.to_thread(harness.produce_poison, LIFECYCLE)
    scenario.inject(
        f"{len(KINDS)} poison classes ({', '.join(KINDS)}) on each of {', '.join(LIFECYCLE)}, "
        f"right after dataset.ready"
    )
    await harness.verify_run(scenario, run)
    bootstrap, prefix = harness.setup.servers.kafka_bootstrap, harness.setup.topic_prefix
    total = 0
    for topic, poison in sent.items():
        consumers = topic_spec(topic.removeprefix(prefix)).consumers
        expected = len(poison) * len(consumers)
        dead = await asyncio.to_thread(read_topic, bootstrap, dlq_topic(topic), expected, 30.0)
        headers = [dict(inbound(message).headers) for message in dead]
        seen = sorted((h["poison"].decode(), h["dlq.kind"].decode()) for h in headers)
        assert seen == sorted((name, KINDS[name]) for name in poison for _ in consumers), topic
        assert all(h["dlq.origin.topic"] == topic.encode() for h in headers), topic
        total += expected
    scenario.check(
        f"all {total} dead letters: every poison message once per consuming service, each "
        f"with its kind and origin topic"
    )
    # With all of it dead-lettered, nothing is left to trip over: a run started now is normal.
    await harness.verify_run(scenario, await harness.request_run(traffic))
    scenario.passed = True
