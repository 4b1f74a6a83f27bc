"""The kit's one Kafka consumer: a confluent_kafka `Consumer` in a group, with manual commits.

Every call on the client runs on one dedicated thread, so its blocking calls never hold the event
loop, and its rebalance callbacks (which librdkafka runs inside a poll, on that thread) see the
same state as `fetch`. The event services consume through `consume_events` below; ingest, whose
source is raw log lines rather than envelopes, reads batches from the same class.

Pausing stays in the group without losing anything: `keep_alive` polls while every partition is
paused, and a message of a partition assigned in between is held and handed out first after
`resume`. A revoked partition's held messages are dropped: its new owner reads them again from
the committed offset.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from flywheel_contracts.runtime.consumer_health import ClientHooks
from flywheel_contracts.runtime.settings import KafkaConfigValue, ServiceSettings

T = TypeVar("T")

PartitionKey = tuple[str, int]
"""(topic, partition)."""

_KEEP_ALIVE_POLL_S = 0.5
_METADATA_REFRESH_MS = 10_000
_KEEP_ALIVE_BATCH = 1000

_log = structlog.get_logger("flywheel.consumer")


def consumer_config(
    settings: ServiceSettings, **tuning: KafkaConfigValue
) -> dict[str, KafkaConfigValue]:
    """The group membership, manual commits from the earliest offset, then `tuning`
    (librdkafka property names with dots as underscores), then the operator's `kafka.extra`."""
    kafka = settings.kafka
    return {
        **settings.group_membership(),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": kafka.fetch_wait_max_ms,
        # A subscribed topic missing from the first metadata (created a moment before by
        # another service) is otherwise found only at librdkafka's 5-minute refresh.
        "topic.metadata.refresh.interval.ms": _METADATA_REFRESH_MS,
        **{name.replace("_", "."): value for name, value in tuning.items()},
        **kafka.client_config(),
    }


class KafkaConsumer:
    """Subscribed to `topics` while open; use as `async with KafkaConsumer(...)`."""

    def __init__(
        self,
        config: Mapping[str, KafkaConfigValue],
        topics: Sequence[str],
        *,
        hooks: ClientHooks | None = None,
    ) -> None:
        """`hooks` (librdkafka callbacks, e.g. a `ConsumerHealth`'s) join the configuration."""
        self._config = {**config, **(hooks or {})}
        self.topics = tuple(topics)
        self._executor: ThreadPoolExecutor | None = None
        self._consumer: Consumer | None = None
        # Touched only on the consumer thread (fetch, keep-alive, rebalance callbacks).
        self._held: list[Message] = []
        """Messages read during a keep-alive, handed out first by the next fetch."""
        self._held_partitions: set[PartitionKey] = set()
        """Partitions paused by `hold` until their `release`."""

    async def __aenter__(self) -> Self:
        """Open (again, after a close: the consume loop reopens it after a crash)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._consumer = await self._call(self._open)
        _log.info("consumer.opened", topics=list(self.topics), group=self._config.get("group.id"))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await asyncio.shield(self._call(self._close))
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

    async def fetch(self, max_messages: int, timeout_s: float) -> list[Message]:
        """Up to `max_messages` next messages, waiting up to `timeout_s` for the batch to fill
        (a throughput pipeline's read). Raises KafkaException on a fatal client error."""
        return await self._call(self._fetch, max_messages, timeout_s)

    async def next_messages(self, max_messages: int, timeout_s: float) -> list[Message]:
        """The next message as soon as it arrives (none after `timeout_s`), with up to
        `max_messages - 1` more already fetched: an event handler's read, which must not wait
        for a batch to fill."""
        return await self._call(self._next, max_messages, timeout_s)

    async def pause(self) -> None:
        """Stop fetching; no message is skipped or handed out twice across pause and resume."""
        await self._call(self._pause)

    async def keep_alive(self) -> None:
        """While paused: stay in the group (call at least every few seconds)."""
        await self._call(self._keep_alive)

    async def resume(self) -> None:
        await self._call(self._resume)

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Commit the next offset to read per partition. A commit lost in a rebalance or a
        broker restart only means a redelivery, which is logged, not raised."""
        if offsets:
            await self._call(self._commit, dict(offsets))

    async def hold(self, topic: str, partition: int, offset: int) -> None:
        """Stop reading `partition` and set it back to `offset` (what was read beyond it is
        discarded), until `release`; the other partitions go on."""
        await self._call(self._hold, topic, partition, offset)

    async def release(self, topic: str, partition: int) -> None:
        """Read a held partition again, from the offset it was held at."""
        await self._call(self._release, topic, partition)

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise RuntimeError("the consumer is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # On the consumer thread.

    def _open(self) -> Consumer:
        self._held_partitions.clear()
        consumer = Consumer(self._config, logger=logging.getLogger("flywheel.kafka"))
        consumer.subscribe(list(self.topics), on_assign=_on_assign, on_revoke=self._on_revoke)
        return consumer

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _live(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("the consumer is not open")
        return self._consumer

    def _fetch(self, max_messages: int, timeout_s: float) -> list[Message]:
        if self._held:
            messages, self._held = self._held[:max_messages], self._held[max_messages:]
            return messages
        return self._consume(max_messages, timeout_s)

    def _next(self, max_messages: int, timeout_s: float) -> list[Message]:
        if self._held:
            return self._fetch(max_messages, 0)
        first = self._live().poll(timeout_s)
        if first is None or not _delivered(first):
            return []
        return [first, *self._consume(max_messages - 1, 0)] if max_messages > 1 else [first]

    def _consume(self, max_messages: int, timeout_s: float) -> list[Message]:
        messages = self._live().consume(num_messages=max_messages, timeout=timeout_s)
        return [message for message in messages if _delivered(message)]

    def _pause(self) -> None:
        consumer = self._live()
        consumer.pause(consumer.assignment())

    def _keep_alive(self) -> None:
        consumer = self._live()
        consumer.pause(consumer.assignment())  # partitions assigned since the pause, too
        # Polling keeps the consumer in its group. Paused partitions deliver nothing, but one
        # assigned in between may: its messages are held, never dropped.
        self._held += self._consume(_KEEP_ALIVE_BATCH, _KEEP_ALIVE_POLL_S)

    def _resume(self) -> None:
        consumer = self._live()
        consumer.resume([p for p in consumer.assignment() if _key(p) not in self._held_partitions])

    def _commit(self, offsets: dict[PartitionKey, int]) -> None:
        partitions = [TopicPartition(topic, p, offset) for (topic, p), offset in offsets.items()]
        try:
            self._live().commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            # The messages come again and are recognised as already handled.
            _log.warning("offset.commit_failed", error=str(exc), offsets=len(partitions))

    def _seek(self, topic: str, partition: int, offset: int) -> None:
        self._held = [m for m in self._held if (m.topic(), m.partition()) != (topic, partition)]
        try:
            self._live().seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:
            # Revoked meanwhile: its new owner reads from the committed offset.
            _log.warning("consumer.seek_failed", topic=topic, partition=partition, error=str(exc))

    def _hold(self, topic: str, partition: int, offset: int) -> None:
        try:
            self._live().pause([TopicPartition(topic, partition)])
        except KafkaException as exc:
            _log.warning("consumer.hold_failed", topic=topic, partition=partition, error=str(exc))
            return  # revoked meanwhile: its new owner reads from the committed offset
        self._held_partitions.add((topic, partition))
        self._seek(topic, partition, offset)

    def _release(self, topic: str, partition: int) -> None:
        if (topic, partition) not in self._held_partitions:
            return  # revoked since it was held
        self._held_partitions.discard((topic, partition))
        try:
            self._live().resume([TopicPartition(topic, partition)])
        except KafkaException as exc:
            _log.warning(
                "consumer.release_failed", topic=topic, partition=partition, error=str(exc)
            )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {_key(partition) for partition in partitions}
        self._held = [m for m in self._held if (m.topic(), m.partition()) not in revoked]
        self._held_partitions -= revoked
        _log.info("partitions.revoked", partitions=_names(partitions))


def _on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
    _log.info("partitions.assigned", partitions=_names(partitions))


def _key(partition: TopicPartition) -> PartitionKey:
    return (partition.topic, partition.partition)


def _names(partitions: list[TopicPartition]) -> list[str]:
    return sorted(f"{p.topic}[{p.partition}]" for p in partitions)


def _delivered(message: Message) -> bool:
    """Whether `message` carries a record (not an end-of-partition or transient error event);
    a fatal error is raised."""
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:
        _log.warning("consumer.error", error=str(error))
    return False
