"""How a service's consumers join their group, on the real broker: cooperative-sticky by
default, and with static membership a restarted instance takes its partitions back at once
instead of waiting out the old member's session."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer

from flywheel_contracts.runtime.settings import KafkaSettings, ServiceSettings

SESSION_MS = 30_000


class _Settings(ServiceSettings):
    service_name: str = "janitor"
    group: str | None = None

    @property
    def consumer_group(self) -> str:
        return self.group or super().consumer_group


@pytest.mark.unit
def test_membership_defaults_to_cooperative_sticky_and_dynamic_members() -> None:
    membership = _Settings(instance_id="a").group_membership()
    assert membership["partition.assignment.strategy"] == "cooperative-sticky"
    assert membership["group.id"] == "flywheel.janitor"
    assert "group.instance.id" not in membership


@pytest.fixture
def topic(make_topic: Callable[..., str]) -> str:
    return make_topic(partitions=3)


# A member in a process of its own, which the test SIGKILLs once it holds partitions: a crash,
# with no goodbye to the group.
_MEMBER = """
import json, sys, time
from confluent_kafka import Consumer
consumer = Consumer(json.loads(sys.argv[1]))
consumer.subscribe([sys.argv[2]])
while not consumer.assignment():
    consumer.poll(0.2)
print("assigned", flush=True)
while True:
    consumer.poll(0.2)
"""


def _config(settings: _Settings) -> dict[str, object]:
    return {**settings.kafka.client_config(), **settings.group_membership()}


def _crashed_member(settings: _Settings, topic: str) -> None:
    member = subprocess.Popen(
        [sys.executable, "-c", _MEMBER, json.dumps(_config(settings)), topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert member.stdout is not None
        assert member.stdout.readline().strip() == "assigned"
    finally:
        member.kill()
        member.wait()


def _assigned_within(settings: _Settings, topic: str, timeout_s: float) -> tuple[set[int], float]:
    consumer = Consumer(_config(settings))
    consumer.subscribe([topic])
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s:
            consumer.poll(0.2)
            assigned = {tp.partition for tp in consumer.assignment()}
            if assigned:
                return assigned, time.monotonic() - started
        return set(), time.monotonic() - started
    finally:
        consumer.close()


@pytest.mark.integration
def test_a_static_member_restarted_gets_its_partitions_back_before_its_session_ends(
    kafka_bootstrap: str, topic: str
) -> None:
    settings = _Settings(
        instance_id=f"static-{uuid.uuid4().hex[:6]}",
        group=f"flywheel.test-membership.{topic}",
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap,
            static_membership=True,
            session_timeout_ms=SESSION_MS,
        ),
    )
    _crashed_member(settings, topic)
    again, seconds = _assigned_within(settings, topic, SESSION_MS / 1000)
    assert again == {0, 1, 2}
    # A dynamic member would wait for the crashed one's session (30 s) to expire first.
    assert seconds < SESSION_MS / 1000 / 3, f"took {seconds:.1f}s"
    print(f"static member back with its partitions after {seconds:.2f}s")
