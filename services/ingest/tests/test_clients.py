"""The Kafka adapters without a broker: topic names under the prefix, headers, partial failures."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from flywheel_contracts.events.records import RejectedRecord, RejectReason, SourcePosition
from flywheel_contracts.runtime import KafkaSettings
from flywheel_ingest.clients.kafka_source import KafkaSource, source_config
from flywheel_ingest.clients.outbox import KafkaOutbox
from flywheel_ingest.clients.raw_topic import KafkaRawTopic, RawTopicUnavailable
from flywheel_ingest.config import IngestSettings
from flywheel_ingest.errors import OutboxUnavailable

pytestmark = pytest.mark.unit


class FakePublisher:
    def __init__(self, fail_on: Collection[bytes] = ()) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        self.fail_on = fail_on

    async def send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        if any(marker in value for marker in self.fail_on):
            raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT))
        self.sent.append((topic, value, key, headers))


def _rejection(offset: int) -> RejectedRecord:
    return RejectedRecord.of(
        f"broken line {offset}".encode(),
        reason=RejectReason.INVALID_JSON,
        message="not valid JSON",
        source=SourcePosition(topic="t1.logs.raw", partition=0, offset=offset),
        rejected_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def _kit(publisher: FakePublisher) -> Any:
    return SimpleNamespace(
        settings=SimpleNamespace(kafka=KafkaSettings(topic_prefix="t1.")), publisher=publisher
    )


async def test_rejections_go_to_the_prefixed_topic_with_reason_and_group_headers() -> None:
    publisher = FakePublisher()
    await KafkaOutbox(_kit(publisher), group="flywheel.ingest").reject([_rejection(7)])
    ((topic, value, key, headers),) = publisher.sent
    assert (topic, key) == ("t1.logs.rejected", None)
    assert headers == [("rejected.reason", b"invalid_json"), ("rejected.by", b"flywheel.ingest")]
    assert RejectedRecord.model_validate_json(value) == _rejection(7)


async def test_rejections_not_acknowledged_are_named_for_a_retry() -> None:
    publisher = FakePublisher(fail_on={b"line 2"})
    with pytest.raises(OutboxUnavailable) as raised:
        await KafkaOutbox(_kit(publisher), group="g").reject([_rejection(n) for n in range(4)])
    assert [r.source.offset for r in raised.value.pending] == [2]
    assert len(publisher.sent) == 3


async def test_intake_lines_are_sent_keyed_and_any_failure_is_reported() -> None:
    publisher = FakePublisher()
    topic = KafkaRawTopic(publisher, "t1.logs.raw")  # type: ignore[arg-type]
    await topic.put([b"a", b"b"], b"app")
    assert [(t, v, k) for t, v, k, _ in publisher.sent] == [
        ("t1.logs.raw", b"a", b"app"),
        ("t1.logs.raw", b"b", b"app"),
    ]
    publisher.fail_on = {b"x"}
    with pytest.raises(RawTopicUnavailable, match="1 of 2 lines"):
        await topic.put([b"x", b"y"], None)


def test_the_source_reads_the_prefixed_topic_with_manual_commits() -> None:
    settings = IngestSettings(
        kafka=KafkaSettings(topic_prefix="t1.", extra={"fetch.min.bytes": 1}),
        group_id="replay",
    )
    assert KafkaSource(settings).topic == "t1.logs.raw"
    config = source_config(settings)
    assert config["group.id"] == "replay"
    assert config["enable.auto.commit"] is False
    assert config["max.partition.fetch.bytes"] == 8 * 1024 * 1024  # a batch pipeline's reads
    assert config["fetch.min.bytes"] == 1  # the operator's extras win
