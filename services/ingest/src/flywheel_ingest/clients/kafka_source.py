"""The source topic (logs.raw, not envelopes) through a confluent_kafka Consumer with manual
commits. Every call on the consumer runs on one dedicated thread, so its blocking calls never hold
the event loop and its rebalance callbacks see the same state as `fetch`. The consumer reports
librdkafka statistics to the kit's `ConsumerHealth`, from inside its polls.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from flywheel_contracts import catalog
from flywheel_contracts.runtime.consumer_health import ConsumerHealth, StallGate
from flywheel_contracts.runtime.settings import KafkaConfigValue
from flywheel_contracts.runtime.topics import ensure_topics, new_topics
from flywheel_ingest.config import IngestSettings
from flywheel_ingest.documents import RawLine
from flywheel_ingest.ports import PartitionKey
from flywheel_ingest.producers import FORMAT_HEADER, Format
from flywheel_ingest.scope import TOKEN_HEADER

T = TypeVar("T")

_KEEP_ALIVE_POLL_S = 0.5
_KEEP_ALIVE_BATCH = 1000
_MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024  # a few hundred 5-20 KB records per fetch
_PREFETCH_KBYTES = 32 * 1024  # librdkafka's default (64 MB) is more than a batch pipeline needs

_log = structlog.get_logger("flywheel.ingest.source")


def consumer_config(settings: IngestSettings) -> dict[str, KafkaConfigValue]:
    kafka = settings.kafka
    return {
        **settings.group_membership(),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": kafka.fetch_wait_max_ms,
        "max.partition.fetch.bytes": _MAX_PARTITION_FETCH_BYTES,
        "queued.max.messages.kbytes": _PREFETCH_KBYTES,
        **kafka.client_config(),
    }


class KafkaSource:
    """A `Source` over the settings' source topic; use as `async with KafkaSource(...)`."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        health: ConsumerHealth | None = None,
        stall: StallGate | None = None,
    ) -> None:
        """`health` receives the consumer's statistics; with the stall test hook on, `stall`
        holds every poll while it is closed."""
        self._settings = settings
        self._health = health
        self._stall = stall
        self._topic = settings.kafka.topic(settings.source_topic)  # under the topic prefix
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-consumer")
        self._consumer: Consumer | None = None
        # Lines that arrived while paused, handed out first on resume. Touched only on the
        # consumer thread (fetch, keep-alive, rebalance callbacks).
        self._held: list[RawLine] = []

    async def __aenter__(self) -> Self:
        kafka = self._settings.kafka
        try:
            spec = catalog.topic(self._settings.source_topic)
        except KeyError:
            pass  # a topic outside the catalog is provisioned by whoever owns it
        else:
            await ensure_topics(kafka, new_topics([spec], prefix=kafka.topic_prefix))
        self._consumer = await self._call(self._open)
        _log.info("source.opened", topic=self._topic, group=self._settings.consumer_group)
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
            self._executor.shutdown(wait=False)

    @property
    def topic(self) -> str:
        return self._topic

    async def fetch(self, max_lines: int, timeout_s: float) -> list[RawLine]:
        if self._stall is not None:
            await self._stall.passage()
        return await self._call(self._fetch, max_lines, timeout_s)

    async def pause(self) -> None:
        await self._call(self._pause)

    async def keep_alive(self) -> None:
        if self._stall is not None:
            await self._stall.passage()
        await self._call(self._keep_alive)

    async def resume(self) -> None:
        await self._call(self._resume)

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        await self._call(self._commit, dict(offsets))

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # On the consumer thread.

    def _open(self) -> Consumer:
        hooks = self._health.client_hooks() if self._health is not None else {}
        consumer = Consumer(
            {**consumer_config(self._settings), **hooks}, logger=logging.getLogger("flywheel.kafka")
        )
        consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        return consumer

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _live(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("the source is not open")
        return self._consumer

    def _fetch(self, max_lines: int, timeout_s: float) -> list[RawLine]:
        if self._held:
            lines, self._held = self._held[:max_lines], self._held[max_lines:]
            return lines
        return self._consume(max_lines, timeout_s)

    def _consume(self, max_lines: int, timeout_s: float) -> list[RawLine]:
        messages = self._live().consume(num_messages=max_lines, timeout=timeout_s)
        return [line for line in map(_line, messages) if line is not None]

    def _pause(self) -> None:
        consumer = self._live()
        consumer.pause(consumer.assignment())

    def _keep_alive(self) -> None:
        consumer = self._live()
        consumer.pause(consumer.assignment())  # partitions assigned since the pause, too
        # Polling keeps the consumer in its group. Paused partitions deliver nothing, but one
        # assigned in between may: its lines are held, never dropped.
        self._held += self._consume(_KEEP_ALIVE_BATCH, _KEEP_ALIVE_POLL_S)

    def _resume(self) -> None:
        consumer = self._live()
        consumer.resume(consumer.assignment())

    def _commit(self, offsets: dict[PartitionKey, int]) -> None:
        partitions = [TopicPartition(topic, p, offset) for (topic, p), offset in offsets.items()]
        try:
            self._live().commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            # Lost in a rebalance or a broker restart: the lines come again and are recognised
            # by their content ids.
            _log.warning("offset.commit_failed", error=str(exc), offsets=len(partitions))

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        _log.info("partitions.assigned", partitions=sorted(p.partition for p in partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Their new owner reads these lines again from the committed offset.
        revoked = {(partition.topic, partition.partition) for partition in partitions}
        self._held = [line for line in self._held if (line.topic, line.partition) not in revoked]
        _log.info("partitions.revoked", partitions=sorted(p.partition for p in partitions))


def _line(message: Message) -> RawLine | None:
    error = message.error()
    if error is not None:
        if error.fatal():
            raise KafkaException(error)
        if error.code() != KafkaError._PARTITION_EOF:
            _log.warning("source.error", error=str(error))
        return None
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        return None
    headers = _headers(message)
    return RawLine(
        message.value() or b"",
        topic,
        partition,
        offset,
        headers.get(FORMAT_HEADER, Format.RECORD),
        headers.get(TOKEN_HEADER),
    )


def _headers(message: Message) -> dict[str, str]:
    """The message's headers as text; the first of a repeated name wins."""
    headers = message.headers() or []
    found: dict[str, str] = {}
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        if value is not None and name not in found:
            found[name] = (
                value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
            )
    return found
