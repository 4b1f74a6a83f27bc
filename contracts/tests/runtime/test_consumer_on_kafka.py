"""The kit's consumer on the real broker: a held partition delivers nothing while the others go
on, and once released it delivers again from the offset it was held at."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from flywheel_contracts.runtime.consumer import KafkaConsumer, consumer_config
from flywheel_contracts.runtime.settings import KafkaSettings, ServiceSettings

pytestmark = pytest.mark.integration

Position = tuple[int, int]
"""(partition, offset)."""


class _Settings(ServiceSettings):
    service_name: str = "janitor"


@pytest.fixture
def topic(make_topic: Callable[..., str]) -> str:
    return make_topic(partitions=2)


def _produce(kafka_bootstrap: str, topic: str, partition: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for _ in range(count):
        producer.produce(topic, b"{}", partition=partition)
    assert producer.flush(10) == 0


async def _read(consumer: KafkaConsumer, seconds: float) -> list[Position]:
    read: list[Position] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for message in await consumer.next_messages(100, 0.2):
            read.append((message.partition() or 0, message.offset() or 0))
    return read


async def _read_until(consumer: KafkaConsumer, wanted: set[Position]) -> list[Position]:
    read: list[Position] = []
    deadline = time.monotonic() + 30
    while not wanted <= set(read):
        assert time.monotonic() < deadline, f"read {read}, wanted {sorted(wanted)}"
        read += await _read(consumer, 0.2)
    return read


async def test_a_held_partition_waits_while_the_others_go_on_then_resumes_where_held(
    kafka_bootstrap: str, topic: str
) -> None:
    settings = _Settings(
        group_id=f"flywheel.test-hold.{topic}",
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
    )
    _produce(kafka_bootstrap, topic, 0, 3)
    _produce(kafka_bootstrap, topic, 1, 1)
    async with KafkaConsumer(consumer_config(settings), [topic]) as consumer:
        await _read_until(consumer, {(0, 0), (0, 1), (0, 2), (1, 0)})

        await consumer.hold(topic, 0, 1)
        _produce(kafka_bootstrap, topic, 0, 1)
        _produce(kafka_bootstrap, topic, 1, 2)
        while_held = await _read_until(consumer, {(1, 1), (1, 2)})
        while_held += await _read(consumer, 1.0)
        assert [p for p in while_held if p[0] == 0] == []

        await consumer.release(topic, 0)
        after = await _read_until(consumer, {(0, 1), (0, 2), (0, 3)})
        assert [p for p in after if p[0] == 0] == [(0, 1), (0, 2), (0, 3)]
