"""The kit's Kafka consumer on a fake client: what it hands out, holds, drops and raises."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from flywheel_contracts.runtime import consumer as kit_consumer
from flywheel_contracts.runtime.consumer import KafkaConsumer, consumer_config
from flywheel_contracts.runtime.settings import KafkaSettings, ServiceSettings

pytestmark = pytest.mark.unit


class _Settings(ServiceSettings):
    service_name: str = "janitor"


class FakeMessage:
    def __init__(self, partition: int, offset: int, error: KafkaError | None = None) -> None:
        self._partition, self._offset, self._error = partition, offset, error

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeClient:
    """Delivers its queue whatever is paused, as a partition assigned mid-pause would."""

    instances: ClassVar[list[FakeClient]] = []

    def __init__(self, config: dict[str, object], logger: object = None) -> None:
        self.config = config
        self.queue: list[FakeMessage] = []
        self.paused_calls = 0
        self.sought: list[tuple[str, int, int]] = []
        self.committed: list[list[tuple[str, int, int]]] = []
        FakeClient.instances.append(self)

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.topics, self.callbacks = topics, callbacks

    def assignment(self) -> list[object]:
        return []

    def pause(self, partitions: list[object]) -> None:
        self.paused_calls += 1

    def resume(self, partitions: list[object]) -> None:
        pass

    def poll(self, timeout: float) -> FakeMessage | None:
        return self.queue.pop(0) if self.queue else None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        taken, self.queue = self.queue[:num_messages], self.queue[num_messages:]
        return taken

    def seek(self, partition: Any) -> None:
        self.sought.append((partition.topic, partition.partition, partition.offset))

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.committed.append([(p.topic, p.partition, p.offset) for p in offsets])

    def close(self) -> None:
        pass


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    monkeypatch.setattr(kit_consumer, "Consumer", FakeClient)
    return FakeClient


def _positions(messages: list[Any]) -> list[tuple[int, int]]:
    return [(m.partition(), m.offset()) for m in messages]


def test_the_configuration_commits_by_hand_and_lets_the_operator_win() -> None:
    settings = _Settings(kafka=KafkaSettings(extra={"fetch.min.bytes": 7}))
    config = consumer_config(settings, max_partition_fetch_bytes=1024)
    assert config["group.id"] == "flywheel.janitor"
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False
    assert config["auto.offset.reset"] == "earliest"
    assert config["max.partition.fetch.bytes"] == 1024
    assert config["fetch.min.bytes"] == 7


async def test_messages_arriving_while_paused_are_held_for_after_the_resume(
    client: type[FakeClient],
) -> None:
    async with KafkaConsumer({}, ["t"]) as consumer:
        fake = client.instances[-1]
        fake.queue = [FakeMessage(0, n) for n in range(3)]
        assert _positions(await consumer.fetch(2, 0.1)) == [(0, 0), (0, 1)]
        await consumer.pause()
        fake.queue += [FakeMessage(1, n) for n in range(4)]
        await consumer.keep_alive()
        await consumer.resume()
        fetched = await consumer.fetch(10, 0.1)
        fetched += await consumer.fetch(10, 0.1)
    assert _positions(fetched) == [(0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]
    assert fake.paused_calls == 2  # at the pause, and again on the keep-alive


async def test_next_messages_returns_the_first_with_those_already_fetched(
    client: type[FakeClient],
) -> None:
    async with KafkaConsumer({}, ["t"]) as consumer:
        fake = client.instances[-1]
        assert await consumer.next_messages(10, 0.01) == []
        fake.queue = [FakeMessage(0, n) for n in range(5)]
        assert _positions(await consumer.next_messages(3, 0.01)) == [(0, 0), (0, 1), (0, 2)]
        assert _positions(await consumer.next_messages(1, 0.01)) == [(0, 3)]


async def test_a_hold_drops_what_was_read_ahead_of_its_partition_only(
    client: type[FakeClient],
) -> None:
    async with KafkaConsumer({}, ["t"]) as consumer:
        fake = client.instances[-1]
        await consumer.pause()
        fake.queue = [FakeMessage(0, 5), FakeMessage(1, 8)]
        await consumer.keep_alive()
        await consumer.hold("t", 0, 5)
        await consumer.resume()
        assert _positions(await consumer.fetch(10, 0.01)) == [(1, 8)]
    assert fake.sought == [("t", 0, 5)]


async def test_a_revoked_partition_loses_its_held_messages(client: type[FakeClient]) -> None:
    async with KafkaConsumer({}, ["t"]) as consumer:
        fake = client.instances[-1]
        await consumer.pause()
        fake.queue = [FakeMessage(0, 1), FakeMessage(1, 2)]
        await consumer.keep_alive()
        revoked = [TopicPartition("t", 1)]
        await consumer._call(fake.callbacks["on_revoke"], fake, revoked)
        assert _positions(await consumer.fetch(10, 0.01)) == [(0, 1)]


async def test_end_of_partition_events_are_skipped_and_a_fatal_error_raised(
    client: type[FakeClient],
) -> None:
    eof = KafkaError(KafkaError._PARTITION_EOF)
    fatal = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
    async with KafkaConsumer({}, ["t"]) as consumer:
        fake = client.instances[-1]
        fake.queue = [FakeMessage(0, 0, eof), FakeMessage(0, 1)]
        assert _positions(await consumer.fetch(10, 0.01)) == [(0, 1)]
        fake.queue = [FakeMessage(0, 2, fatal)]
        with pytest.raises(KafkaException):
            await consumer.fetch(10, 0.01)


async def test_commits_go_out_per_partition_and_none_when_nothing_was_handled(
    client: type[FakeClient],
) -> None:
    async with KafkaConsumer({}, ["t"]) as consumer:
        await consumer.commit({})
        await consumer.commit({("t", 0): 4, ("t", 1): 9})
    assert client.instances[-1].committed == [[("t", 0, 4), ("t", 1, 9)]]


async def test_it_opens_again_after_a_close(client: type[FakeClient]) -> None:
    consumer = KafkaConsumer({"group.id": "g"}, ["t"], hooks={"statistics.interval.ms": 1000})
    for _ in range(2):
        async with consumer:
            assert client.instances[-1].config == {"group.id": "g", "statistics.interval.ms": 1000}
    with pytest.raises(RuntimeError, match="not open"):
        await consumer.fetch(1, 0.01)
