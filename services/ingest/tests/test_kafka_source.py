"""The Kafka source on the real broker: pausing and resuming skips and repeats nothing, and a
new source of the same group starts at the committed offset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from flywheel_contracts.runtime import KafkaSettings
from flywheel_ingest.clients.kafka_source import KafkaSource
from flywheel_ingest.config import IngestSettings
from flywheel_ingest.documents import RawLine
from flywheel_ingest.testing import unique
from flywheel_localstack.pytest_plugin import StackHandle

pytestmark = pytest.mark.integration

MESSAGES = 3_000


@pytest.fixture
def topic(stack: StackHandle) -> Iterator[str]:
    name = unique("ingest-source")
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=2)])[name].result(timeout=30)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "linger.ms": 5})
    for number in range(MESSAGES):
        producer.produce(name, value=b"x" * 2000 + str(number).encode(), key=str(number % 7))
    assert producer.flush(30) == 0
    try:
        yield name
    finally:
        admin.delete_topics([name])[name].result(timeout=30)


def _settings(stack: StackHandle, topic: str) -> IngestSettings:
    return IngestSettings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap),
        source_topic=topic,
        group_id=topic,
    )


async def _fetch(source: KafkaSource, lines: list[RawLine], until: int) -> None:
    for _ in range(200):
        if len(lines) >= until:
            return
        lines += await source.fetch(100, 0.2)
    raise AssertionError(f"only {len(lines)} of {until} lines fetched")


async def test_pause_and_resume_neither_skip_nor_repeat_a_line(
    stack: StackHandle, topic: str
) -> None:
    lines: list[RawLine] = []
    async with KafkaSource(_settings(stack, topic)) as source:
        await _fetch(source, lines, 500)  # librdkafka has prefetched far more by now
        await source.pause()
        for _ in range(4):
            await source.keep_alive()
        await source.resume()
        await _fetch(source, lines, MESSAGES)
        lines += await source.fetch(100, 1.0)
    positions = [(line.partition, line.offset) for line in lines]
    assert len(positions) == len(set(positions)) == MESSAGES


async def test_a_new_source_starts_at_the_committed_offsets(stack: StackHandle, topic: str) -> None:
    settings = _settings(stack, topic)
    first: list[RawLine] = []
    async with KafkaSource(settings) as source:
        await _fetch(source, first, 1000)
        committed: dict[tuple[str, int], int] = {}
        for line in first[:1000]:  # each partition's lines arrive in order from offset 0
            key = (line.topic, line.partition)
            committed[key] = max(committed.get(key, 0), line.offset + 1)
        await source.commit(committed)
    rest: list[RawLine] = []
    async with KafkaSource(settings) as source:
        await _fetch(source, rest, MESSAGES - 1000)
        rest += await source.fetch(100, 1.0)
    starts = {
        key: min(line.offset for line in rest if (line.topic, line.partition) == key)
        for key in committed
    }
    assert starts == committed
    assert len({(line.partition, line.offset) for line in rest}) == len(rest) == MESSAGES - 1000
