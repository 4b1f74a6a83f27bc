"""Creating the catalog's topics (and their dead-letter topics) when they are missing.

Services call this at start so that no topic is ever auto-created by a client with one
partition and the broker's default retention.
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from flywheel_contracts.catalog import TopicSpec, dlq_topic
from flywheel_contracts.runtime.settings import KafkaSettings

DLQ_PARTITIONS = 1
DLQ_RETENTION_MS = 14 * 24 * 3600 * 1000
_BROKER_DEFAULT_REPLICATION = -1


@dataclass(frozen=True)
class Durability:
    """How topics are replicated; None leaves a value to the cluster's defaults (a replication
    factor of 1 would silently lose data on a multi-broker cluster)."""

    replication_factor: int | None = None
    min_insync_replicas: int | None = None

    @classmethod
    def of(cls, kafka: KafkaSettings) -> "Durability":
        return cls(kafka.topic_replication_factor, kafka.topic_min_insync_replicas)


CLUSTER_DEFAULTS = Durability()


def new_topics(
    specs: Iterable[TopicSpec], prefix: str = "", durability: Durability = CLUSTER_DEFAULTS
) -> list[NewTopic]:
    """Each spec's topic, plus its dead-letter topic when it has one, named under `prefix`."""
    planned: dict[str, NewTopic] = {}
    for spec in specs:
        name = prefix + spec.name
        planned[name] = _new_topic(name, spec.partitions, spec.retention_ms, durability)
        if spec.dlq:
            dlq = dlq_topic(name)
            planned[dlq] = _new_topic(dlq, DLQ_PARTITIONS, DLQ_RETENTION_MS, durability)
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


def _new_topic(name: str, partitions: int, retention_ms: int, durability: Durability) -> NewTopic:
    config = {"retention.ms": str(retention_ms)}
    if durability.min_insync_replicas is not None:
        config["min.insync.replicas"] = str(durability.min_insync_replicas)
    return NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=durability.replication_factor or _BROKER_DEFAULT_REPLICATION,
        config=config,
    )
