"""A topic prefix namespaces every topic a service touches, dead-letter topics included; topics
take the cluster's replication settings unless configured."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flywheel_contracts import catalog
from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_contracts.runtime.topics import Durability, new_topics

pytestmark = pytest.mark.unit


def test_prefix_applies_to_topics_and_their_dead_letter_twins() -> None:
    spec = catalog.topic("run.requested")

    names = [t.topic for t in new_topics([spec], prefix="t42.")]

    assert names == ["t42.run.requested", "t42.run.requested.dlq"]
    assert KafkaSettings(topic_prefix="t42.").topic("nim.up") == "t42.nim.up"


def test_no_prefix_keeps_catalog_names() -> None:
    assert KafkaSettings().topic("nim.up") == "nim.up"


def test_prefix_must_be_a_legal_topic_fragment() -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(topic_prefix="has space/")


def test_topics_take_the_clusters_replication_unless_configured() -> None:
    spec = catalog.topic("run.requested")
    [topic, dlq] = new_topics([spec])
    assert (topic.replication_factor, dlq.replication_factor) == (-1, -1)
    assert "min.insync.replicas" not in (topic.config or {})

    durable = Durability.of(KafkaSettings(topic_replication_factor=3, topic_min_insync_replicas=2))
    for created in new_topics([spec], durability=durable):
        assert created.replication_factor == 3
        assert (created.config or {}).get("min.insync.replicas") == "2"


def test_more_insync_replicas_than_replicas_is_refused() -> None:
    with pytest.raises(ValidationError, match="must not exceed topic_replication_factor"):
        KafkaSettings(topic_replication_factor=1, topic_min_insync_replicas=2)
