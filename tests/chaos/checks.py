"""What the events say about one run after a fault: each distinct event once, however often
Kafka redelivered it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID

from confluent_kafka import Consumer, TopicPartition

from flywheel_contracts.catalog import dlq_topic
from flywheel_localstack.services import FlywheelSetup
from flywheel_nim_manager.testing.process import EventTap
from tests.support.runs import unique


def distinct(
    tap: EventTap, event_type: str, run_id: UUID, key: Callable[[Any], object]
) -> Counter[object]:
    """Distinct events (by id) of the run per `key(payload)`: a redelivered copy keeps its id
    and counts once, a second event about the same thing counts twice."""
    return Counter(key(e.payload) for e in unique(tap.of(event_type, run_id)))


def copies(tap: EventTap, event_type: str, run_id: UUID) -> int:
    """Messages of `event_type` for the run, redelivered copies included."""
    return len(tap.of(event_type, run_id))


def dead_letters(setup: FlywheelSetup) -> dict[str, int]:
    """Messages in each dead-letter topic under the flywheel's prefix (end minus start offsets:
    nothing here deletes records, so this is what was ever dead-lettered)."""
    consumer = Consumer(
        {**setup.servers.kafka().client_config(), "group.id": f"{setup.name}-dlq-count"}
    )
    try:
        topics = consumer.list_topics(timeout=10).topics
        counts: dict[str, int] = {}
        for name, metadata in topics.items():
            if name.startswith(setup.topic_prefix) and name.endswith(dlq_topic("")):
                counts[name] = sum(
                    high - low
                    for low, high in (
                        consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                        for p in metadata.partitions
                    )
                )
        return counts
    finally:
        consumer.close()
