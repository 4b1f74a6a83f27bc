"""Creating the catalog's topics (and their dead-letter topics) when they are missing.

Services call this at start so that no topic is ever auto-created by a client with one
partition and the broker's default retention.
"""

import asyncio
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from flywheel_contracts.catalog import TopicSpec, dlq_topic
from flywheel_contracts.runtime.settings import KafkaSettings

DLQ_PARTITIONS = 1
DLQ_RETENTION_MS = 14 * 24 * 3600 * 1000
_BROKER_DEFAULT_REPLICATION = -1


def new_topics(specs: Iterable[TopicSpec], prefix: str = "") -> list[NewTopic]:
    """Each spec's topic, plus its dead-letter topic when it has one, named under `prefix`."""
    planned: dict[str, NewTopic] = {}
    for spec in specs:
        name = prefix + spec.name
        planned[name] = _new_topic(name, spec.partitions, spec.retention_ms)
        if spec.dlq:
            planned[dlq_topic(name)] = _new_topic(dlq_topic(name), DLQ_PARTITIONS, DLQ_RETENTION_MS)
    return list(planned.values())


async def ensure_topics(kafka: KafkaSettings, topics: Iterable[NewTopic]) -> list[str]:
    """Create the missing `topics`; returns the names that were created."""
    wanted = list(topics)
    if not wanted:
        return []
    admin = AdminClient(kafka.client_config())
    timeout = kafka.request_timeout_s
    futures = admin.create_topics(wanted, request_timeout=timeout, operation_timeout=timeout)
    created: list[str] = []
    for name, future in futures.items():
        try:
            await asyncio.wrap_future(future)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        else:
            created.append(name)
    return created


def _new_topic(name: str, partitions: int, retention_ms: int) -> NewTopic:
    return NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=_BROKER_DEFAULT_REPLICATION,
        config={"retention.ms": str(retention_ms)},
    )
