"""Fixtures for the kit's tests on the real local Kafka and database.

Every test gets its own topics and service name, so tests never see each other's messages,
consumer groups or processed ids.
"""

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts.catalog import dlq_topic
from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.events import RunCancelled
from flywheel_contracts.runtime.settings import (
    DeliverySettings,
    KafkaSettings,
    MongoSettings,
    ServiceSettings,
)

TEST_DATABASE = "flywheel_kit_tests"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_event() -> Callable[..., Envelope[Any]]:
    """A fresh `run.cancelled` event (the kit's tests use it as a generic event)."""

    def make(reason: str = "test") -> Envelope[Any]:
        return new_event(RunCancelled(reason=reason), producer="client", run_id=uuid.uuid4())

    return make


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Creates a fresh topic (of `partitions`) and its dead-letter topic; deletes both after
    the test."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []

    def make(partitions: int = 1) -> str:
        name = _unique("kit-test")
        names = [name, dlq_topic(name)]
        futures = admin.create_topics([NewTopic(n, num_partitions=partitions) for n in names])
        for future in futures.values():
            future.result(timeout=10)
        created.extend(names)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created).values():
            future.result(timeout=10)


@pytest.fixture
def settings_for(kafka_bootstrap: str, mongo_url: str) -> Callable[..., ServiceSettings]:
    """Settings of a throwaway service with fast retries."""

    def make(**overrides: Any) -> ServiceSettings:
        values: dict[str, Any] = {
            "service_name": _unique("kit-test"),
            "kafka": KafkaSettings(bootstrap_servers=kafka_bootstrap, session_timeout_ms=6000),
            "mongo": MongoSettings(url=mongo_url, database=TEST_DATABASE),
            "delivery": DeliverySettings(max_attempts=4, backoff_base_s=0.05, backoff_max_s=0.2),
            "shutdown_timeout_s": 5.0,
            **overrides,
        }
        return ServiceSettings(**values)

    return make


@pytest.fixture
async def kit_db(mongo_url: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        yield client[TEST_DATABASE]
    finally:
        await client.close()
