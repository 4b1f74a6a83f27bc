"""The Kafka adapters without a broker: topic names under the prefix, headers, partial failures."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError, KafkaException

from flywheel_contracts.events.records import RejectedRecord, RejectReason, SourcePosition
from flywheel_contracts.runtime import KafkaSettings
from flywheel_ingest.clients import kafka_source
from flywheel_ingest.clients.kafka_source import KafkaSource, consumer_config
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
    config = consumer_config(settings)
    assert config["group.id"] == "replay"
    assert config["enable.auto.commit"] is False
    assert config["auto.offset.reset"] == "earliest"
    assert config["fetch.min.bytes"] == 1  # the operator's extras win


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "logs.raw"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return b"{}"

    def headers(self) -> None:
        return None


class FakeConsumer:
    """Delivers queued messages whatever is paused, as a partition assigned mid-pause would."""

    instances: ClassVar[list[FakeConsumer]] = []

    def __init__(self, config: dict[str, object], logger: object = None) -> None:
        self.queue: list[FakeMessage] = []
        self.paused_calls = 0
        FakeConsumer.instances.append(self)

    def subscribe(self, topics: list[str], **callbacks: object) -> None:
        self.callbacks = callbacks

    def assignment(self) -> list[object]:
        return []

    def pause(self, partitions: list[object]) -> None:
        self.paused_calls += 1

    def resume(self, partitions: list[object]) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        taken, self.queue = self.queue[:num_messages], self.queue[num_messages:]
        return taken

    def close(self) -> None:
        pass


async def test_lines_arriving_while_paused_are_held_for_after_the_resume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_source, "Consumer", FakeConsumer)
    monkeypatch.setattr(kafka_source, "ensure_topics", _no_topics)
    async with KafkaSource(IngestSettings()) as source:
        consumer = FakeConsumer.instances[-1]
        consumer.queue = [FakeMessage(0, n) for n in range(3)]
        assert [line.offset for line in await source.fetch(2, 0.1)] == [0, 1]
        await source.pause()
        consumer.queue += [FakeMessage(1, n) for n in range(4)]
        await source.keep_alive()
        await source.resume()
        fetched = await source.fetch(10, 0.1)
        fetched += await source.fetch(10, 0.1)
    assert [(line.partition, line.offset) for line in fetched] == [
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
    ]
    assert consumer.paused_calls == 2  # at the pause, and again on every keep-alive


async def _no_topics(*_args: object) -> list[str]:
    return []
