"""A topic prefix namespaces every topic a service touches, dead-letter topics included."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flywheel_contracts import catalog
from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_contracts.runtime.topics import new_topics

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
