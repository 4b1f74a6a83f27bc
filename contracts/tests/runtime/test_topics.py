"""Topic provisioning from catalog specs, on the real Kafka."""

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from flywheel_contracts.catalog import TopicSpec
from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_contracts.runtime.topics import DLQ_RETENTION_MS, ensure_topics, new_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def spec(kafka_bootstrap: str) -> Iterator[TopicSpec]:
    name = f"kit-test-{uuid.uuid4().hex[:10]}"
    yield TopicSpec(
        name=name,
        event_type=None,
        payload=None,
        key="none",
        producer="kit-test",
        consumers=("kit-test",),
        partitions=3,
        retention_ms=3_600_000,
        dlq=True,
    )
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_topics([name, f"{name}.dlq"]).values():
        future.result(timeout=10)


def _retention(admin: AdminClient, topic: str) -> str:
    [future] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    return str(future.result(timeout=10)["retention.ms"].value)


async def test_a_specs_topic_and_its_dead_letter_topic_are_created_once(
    kafka_bootstrap: str, spec: TopicSpec
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)

    first = await ensure_topics(kafka, new_topics([spec]))
    again = await ensure_topics(kafka, new_topics([spec]))

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert first == [spec.name, f"{spec.name}.dlq"]
    assert again == []
    assert len(topics[spec.name].partitions) == 3
    assert len(topics[f"{spec.name}.dlq"].partitions) == 1
    assert _retention(admin, spec.name) == "3600000"
    assert _retention(admin, f"{spec.name}.dlq") == str(DLQ_RETENTION_MS)
