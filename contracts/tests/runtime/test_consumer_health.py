"""The consumer's health from librdkafka's statistics, on a clock the test drives.

The statistics documents in `fixtures/librdkafka/` are librdkafka's own, captured from real
clients by `capture_statistics.py` (see there for what they hold).
"""

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from flywheel_contracts.runtime.consumer_health import (
    ConsumerHealth,
    ConsumerLimits,
    ConsumerStalled,
    ConsumerStats,
    StallGate,
    parse_statistics,
)
from flywheel_contracts.runtime.testing import ManualMonotonic

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).with_name("fixtures") / "librdkafka"
LIMITS = ConsumerLimits(ready_after_s=90, live_after_s=300, settle_grace_s=60)
IN_GROUP = ConsumerStats(
    name="janitor.host-1#consumer-1",
    state="up",
    join_state="steady",
    assignment_size=3,
    rebalance_cnt=1,
    rebalance_reason="",
    lag=0,
)
JOINING = replace(IN_GROUP, join_state="wait-join", assignment_size=0)


@pytest.fixture
def clock() -> ManualMonotonic:
    return ManualMonotonic()


def health_on(clock: ManualMonotonic, limits: ConsumerLimits = LIMITS) -> ConsumerHealth:
    health = ConsumerHealth(limits, statistics_interval_ms=5000, clock=clock)
    health.started()
    return health


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# Statistics as librdkafka writes them.


def test_a_consumer_in_its_group_reports_its_state_assignment_and_lag() -> None:
    stats = parse_statistics(fixture("consumer.json"))

    assert stats is not None
    assert (stats.state, stats.join_state, stats.assignment_size) == ("up", "steady", 3)
    assert stats.in_group
    assert stats.lag == 2  # 4, 3 and 3 records; 4, 3 and 1 committed
    assert stats.rebalance_cnt >= 1
    assert stats.name.startswith("fixture.consumer#consumer-")


def test_a_consumer_still_joining_is_not_in_its_group() -> None:
    stats = parse_statistics(fixture("consumer_joining.json"))

    assert stats is not None
    assert stats.join_state != "steady"
    assert not stats.in_group
    assert stats.assignment_size == 0


def test_a_producers_statistics_are_ignored() -> None:
    assert parse_statistics(fixture("producer.json")) is None


def test_a_consumer_without_a_group_or_partitions_has_no_lag() -> None:
    stats = parse_statistics('{ "name": "c#consumer-1", "type": "consumer", "topics": {} }')

    assert stats == ConsumerStats("c#consumer-1", None, None, 0, 0, "", None)


# Readiness and liveness.


def test_a_consumer_that_keeps_polling_stays_ready_and_alive(clock: ManualMonotonic) -> None:
    health = health_on(clock)
    for _ in range(200):  # 1000 s of reports every 5 s
        clock.advance(5)
        health.observe(IN_GROUP)

    assert health.readiness_problem() is None
    assert health.liveness_problem() is None


def test_a_consumer_that_stops_polling_turns_unready_then_dead_then_recovers(
    clock: ManualMonotonic,
) -> None:
    health = health_on(clock)
    health.observe(IN_GROUP)

    clock.advance(90)
    assert health.readiness_problem() is None
    clock.advance(1)
    unready = health.readiness_problem()
    assert unready == (
        "the consumer has not polled for 91s (readiness allows 90s); last seen: group state up, "
        "join state steady, 3 partitions assigned, 1 rebalances, lag 0"
    )
    assert health.liveness_problem() is None

    clock.advance(210)
    assert health.liveness_problem() == (
        "the consumer has not polled for 301s (liveness allows 300s); last seen: group state up, "
        "join state steady, 3 partitions assigned, 1 rebalances, lag 0"
    )

    health.observe(IN_GROUP)  # polling again: the queued reports arrive at once
    assert health.readiness_problem() is None
    assert health.liveness_problem() is None


async def test_the_readiness_check_raises_with_the_reason(clock: ManualMonotonic) -> None:
    health = health_on(clock)
    health.observe(IN_GROUP)
    await health.check()

    clock.advance(100)

    with pytest.raises(ConsumerStalled, match="has not polled for 100s"):
        await health.check()


def test_a_starting_consumer_gets_the_same_intervals_before_its_first_report(
    clock: ManualMonotonic,
) -> None:
    health = health_on(clock)

    clock.advance(60)
    assert health.readiness_problem() is None  # joining within the grace
    assert health.liveness_problem() is None
    clock.advance(31)
    assert health.readiness_problem() == (
        "the consumer has not polled since it started 91s ago (readiness allows 90s)"
    )
    assert health.liveness_problem() is None
    clock.advance(210)
    assert health.liveness_problem() == (
        "the consumer has not polled since it started 301s ago (liveness allows 300s)"
    )


def test_nothing_is_checked_for_a_service_that_does_not_consume(clock: ManualMonotonic) -> None:
    health = ConsumerHealth(LIMITS, statistics_interval_ms=5000, clock=clock)

    clock.advance(10_000)

    assert health.readiness_problem() is None
    assert health.liveness_problem() is None


def test_a_consumer_out_of_its_group_past_the_grace_is_unready_but_alive(
    clock: ManualMonotonic,
) -> None:
    health = health_on(clock)
    health.observe(IN_GROUP)
    clock.advance(5)
    health.observe(JOINING)  # a rebalance began
    for _ in range(12):
        clock.advance(5)
        health.observe(JOINING)
    assert health.readiness_problem() is None  # 60 s: still within the grace

    clock.advance(5)
    health.observe(JOINING)

    assert health.readiness_problem() == (
        "the consumer has not been in its group with partitions assigned for 65s (allowed 60s): "
        "group state up, join state wait-join, 0 partitions assigned, 1 rebalances, lag 0"
    )
    assert health.liveness_problem() is None
    health.observe(IN_GROUP)
    assert health.readiness_problem() is None


def test_a_consumer_that_never_joins_is_unready_after_the_grace(clock: ManualMonotonic) -> None:
    health = health_on(clock)
    for _ in range(13):
        clock.advance(5)
        health.observe(JOINING)

    problem = health.readiness_problem()

    assert problem is not None
    assert problem.startswith("the consumer has not been in its group with partitions assigned")
    assert "for 65s" in problem


def test_an_instance_holding_no_partition_is_ready_when_assignment_is_not_required(
    clock: ManualMonotonic,
) -> None:
    idle = replace(IN_GROUP, assignment_size=0)
    strict, lenient = (
        health_on(clock),
        health_on(clock, replace(LIMITS, require_assignment=False)),
    )
    for _ in range(20):
        clock.advance(5)
        strict.observe(idle)
        lenient.observe(idle)

    assert strict.readiness_problem() is not None
    assert lenient.readiness_problem() is None


def test_reports_from_the_polling_thread_are_seen_by_the_checks(clock: ManualMonotonic) -> None:
    health = health_on(clock)
    clock.advance(95)
    assert health.readiness_problem() is not None

    poller = threading.Thread(target=health.on_statistics, args=(fixture("consumer.json"),))
    poller.start()
    poller.join()

    assert health.readiness_problem() is None


def test_unreadable_statistics_never_raise_into_the_poll(clock: ManualMonotonic) -> None:
    health = health_on(clock)
    clock.advance(95)

    health.on_statistics('{ "name": "c#consumer-1", "type": "consumer", "cgrp": ')
    health.on_statistics(fixture("producer.json"))

    assert health.readiness_problem() is not None  # neither counts as a poll of the consumer


def test_the_client_hooks_are_librdkafkas_statistics_properties(clock: ManualMonotonic) -> None:
    health = health_on(clock)

    hooks = health.client_hooks()

    assert hooks == {"statistics.interval.ms": 5000, "stats_cb": health.on_statistics}


# The stall test hook.


async def test_the_stall_gate_holds_its_passage_until_resumed() -> None:
    gate = StallGate()
    await asyncio.wait_for(gate.passage(), 1)  # open by default

    gate.stall()
    waiting = asyncio.create_task(gate.passage())
    await asyncio.sleep(0.05)
    assert gate.stalled
    assert not waiting.done()

    gate.resume()
    await asyncio.wait_for(waiting, 1)
    assert not gate.stalled
