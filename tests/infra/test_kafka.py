"""The local Kafka really works: consumer groups, committed offsets, durability across restart."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from flywheel_localstack.pytest_plugin import StackHandle
from tests.infra.shipping import shipper_delivers

pytestmark = pytest.mark.integration


def _new_topic(bootstrap: str, partitions: int = 3) -> str:
    name = f"test.infra.{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    return name


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    for i in range(count):
        producer.produce(topic, key=str(i % 17).encode(), value=str(i).encode())
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def _consume(
    bootstrap: str, topic: str, group: str, limit: int, *, idle_s: float = 5.0
) -> list[int]:
    """Read up to `limit` messages, commit their offsets synchronously, close."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[int] = []
    try:
        while len(seen) < limit:
            batch = consumer.consume(num_messages=min(500, limit - len(seen)), timeout=idle_s)
            if not batch:
                break
            for message in batch:
                assert message.error() is None, message.error()
                seen.append(int(message.value() or b"-1"))
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return seen


def test_consumer_group_resumes_from_committed_offsets(kafka_bootstrap: str) -> None:
    topic = _new_topic(kafka_bootstrap)
    _produce(kafka_bootstrap, topic, 10_000)
    group = f"test-group-{uuid.uuid4().hex[:8]}"

    first = _consume(kafka_bootstrap, topic, group, limit=4_000)
    # A new consumer in the same group starts where the first one committed.
    second = _consume(kafka_bootstrap, topic, group, limit=10_000)

    assert len(first) == 4_000
    assert sorted(first + second) == list(range(10_000))


def test_messages_survive_a_broker_restart(stack: StackHandle) -> None:
    topic = _new_topic(stack.kafka_bootstrap, partitions=1)
    _produce(stack.kafka_bootstrap, topic, 500)

    stack.restart("kafka")

    seen = _consume(stack.kafka_bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}", limit=500, idle_s=15)
    assert seen == list(range(500))
    assert shipper_delivers(stack), "the log shipper reconnects by itself"
