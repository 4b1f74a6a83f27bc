"""Topology of the event bus: who produces and consumes every topic."""

import pytest

from flywheel_contracts import TOPICS, dlq_topic, payload_class, topic
from flywheel_contracts.catalog import (
    EVERY_SERVICE,
    EXTERNAL_PRODUCERS,
    KEY_NONE,
    KEY_PRODUCER,
    KEY_RUN_ID,
    SERVICES,
    consumed_by,
    produced_by,
)

pytestmark = pytest.mark.unit

_PARTICIPANTS = {*SERVICES, *EXTERNAL_PRODUCERS}
_CLIENT_SIDE = {"client", "operator"}


def test_topic_names_are_unique() -> None:
    names = [spec.name for spec in TOPICS]
    assert len(names) == len(set(names))
    assert not {dlq_topic(name) for name in names} & set(names)


def test_only_service_stopping_has_many_producers() -> None:
    shared = [spec.name for spec in TOPICS if spec.producer == EVERY_SERVICE]
    assert shared == ["service.stopping"]


def test_every_topic_has_exactly_one_known_producer() -> None:
    unknown = {
        s.name: s.producer for s in TOPICS if s.producer not in {*_PARTICIPANTS, EVERY_SERVICE}
    }
    assert unknown == {}


def test_external_producers_feed_only_their_entry_points() -> None:
    external = {spec.name: spec.producer for spec in TOPICS if spec.producer in EXTERNAL_PRODUCERS}
    assert external == {
        "logs.raw": "log-shipper",
        "run.requested": "client",
        "run.cancelled": "client",
        "system.shutdown": "operator",
    }


def test_consumers_are_known_participants() -> None:
    for spec in TOPICS:
        assert set(spec.consumers) <= {*SERVICES, *_CLIENT_SIDE}, spec.name
        assert len(spec.consumers) == len(set(spec.consumers)), spec.name


def test_every_service_consumes_something_that_is_produced() -> None:
    produced = {spec.name for service in _PARTICIPANTS for spec in produced_by(service)}
    for service in SERVICES:
        consumed = {spec.name for spec in consumed_by(service)}
        assert consumed, service
        assert consumed <= produced, service


def test_every_service_announces_its_shutdown() -> None:
    for service in SERVICES:
        assert topic("service.stopping") in produced_by(service)
    assert topic("service.stopping") not in produced_by("client")


def test_run_cancelled_reaches_every_service_that_holds_run_work() -> None:
    assert set(topic("run.cancelled").consumers) == set(SERVICES) - {"ingest"}


def test_event_topics_are_named_after_their_event_type() -> None:
    for spec in TOPICS:
        if spec.payload is None:
            assert spec.event_type is None
            continue
        assert spec.name == spec.event_type == spec.payload.EVENT_TYPE
        assert payload_class(spec.name) is spec.payload
        assert spec.payload.SCHEMA_VERSION >= 1


def test_consumed_event_topics_have_a_dead_letter_topic() -> None:
    for spec in TOPICS:
        assert spec.dlq == (spec.payload is not None and bool(spec.consumers)), spec.name


def test_keys_partitions_and_retention() -> None:
    for spec in TOPICS:
        if spec.payload is None:
            assert spec.key == KEY_NONE
        else:
            assert spec.key == (KEY_RUN_ID if spec.payload.RUN_SCOPED else KEY_PRODUCER)
        assert spec.partitions >= 1
        assert spec.retention_ms > 0
    assert topic("logs.raw").partitions == 6


def test_lookups() -> None:
    assert dlq_topic("nim.up") == "nim.up.dlq"
    with pytest.raises(KeyError):
        topic("nope")
    with pytest.raises(KeyError):
        payload_class("logs.raw")
