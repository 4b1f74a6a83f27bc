"""The source topic (logs.raw, not envelopes) through the kit's Kafka consumer, read in batches
with manual commits. The consumer reports librdkafka statistics to the kit's `ConsumerHealth`,
from inside its polls.
"""

from collections.abc import Mapping
from types import TracebackType
from typing import Self

from confluent_kafka import Message

from flywheel_contracts import catalog
from flywheel_contracts.runtime.consumer import KafkaConsumer, consumer_config
from flywheel_contracts.runtime.consumer_health import ConsumerHealth, StallGate
from flywheel_contracts.runtime.settings import KafkaConfigValue
from flywheel_contracts.runtime.topics import ensure_topics, new_topics
from flywheel_ingest.config import IngestSettings
from flywheel_ingest.documents import RawLine
from flywheel_ingest.ports import PartitionKey
from flywheel_ingest.producers import FORMAT_HEADER, Format
from flywheel_ingest.scope import TOKEN_HEADER

_MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024  # a few hundred 5-20 KB records per fetch
_PREFETCH_KBYTES = 32 * 1024  # librdkafka's default (64 MB) is more than a batch pipeline needs


def source_config(settings: IngestSettings) -> dict[str, KafkaConfigValue]:
    """The kit's consumer configuration, tuned for reading big batches."""
    return consumer_config(
        settings,
        max_partition_fetch_bytes=_MAX_PARTITION_FETCH_BYTES,
        queued_max_messages_kbytes=_PREFETCH_KBYTES,
    )


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
        self._stall = stall
        self._topic = settings.kafka.topic(settings.source_topic)  # under the topic prefix
        hooks = health.client_hooks() if health is not None else None
        self._consumer = KafkaConsumer(source_config(settings), [self._topic], hooks=hooks)

    async def __aenter__(self) -> Self:
        kafka = self._settings.kafka
        try:
            spec = catalog.topic(self._settings.source_topic)
        except KeyError:
            pass  # a topic outside the catalog is provisioned by whoever owns it
        else:
            await ensure_topics(kafka, new_topics([spec], prefix=kafka.topic_prefix))
        await self._consumer.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._consumer.__aexit__(exc_type, exc, traceback)

    @property
    def topic(self) -> str:
        return self._topic

    async def fetch(self, max_lines: int, timeout_s: float) -> list[RawLine]:
        if self._stall is not None:
            await self._stall.passage()
        messages = await self._consumer.fetch(max_lines, timeout_s)
        return [line for line in map(_line, messages) if line is not None]

    async def pause(self) -> None:
        await self._consumer.pause()

    async def keep_alive(self) -> None:
        if self._stall is not None:
            await self._stall.passage()
        await self._consumer.keep_alive()

    async def resume(self) -> None:
        await self._consumer.resume()

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        await self._consumer.commit(offsets)


def _line(message: Message) -> RawLine | None:
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
