"""Publishing envelopes: `await publish(...)` returns once Kafka has acknowledged the record.

The kit owns its producer, as it owns its consumer (README, "One Kafka client"). A dedicated
thread serves librdkafka's delivery reports
and hands them to the event loop in batches, one wake-up per poll rather than per record, which
is what lets one process publish tens of thousands of envelopes a second.
"""

import asyncio
import contextlib
import logging
import threading
from collections import Counter, deque
from collections.abc import Iterable
from functools import partial
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from flywheel_contracts.envelope import Envelope, encode
from flywheel_contracts.runtime import metrics
from flywheel_contracts.runtime.delivery import Headers
from flywheel_contracts.runtime.settings import KafkaConfigValue, KafkaSettings

_POLL_S = 0.05
_QUEUE_FULL_WAIT_S = 0.005


def producer_config(kafka: KafkaSettings, client_id: str) -> dict[str, KafkaConfigValue]:
    """An idempotent producer that waits for all in-sync replicas and sends records as big as
    the broker takes (`kafka.message_max_bytes`, not librdkafka's 1 MB default, so a dead letter
    of any message the broker accepted fits); `kafka.extra` still wins."""
    return {
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": kafka.linger_ms,
        "message.max.bytes": kafka.message_max_bytes,
        **kafka.client_config(),
    }


class _Delivery:
    """Completion of one publish call: done when every record it produced is acknowledged,
    failed at the first record Kafka refused. Touched only on the event loop."""

    __slots__ = ("acknowledged", "future", "produced", "sealed")

    def __init__(self, future: "asyncio.Future[None]") -> None:
        self.future = future
        self.produced = 0
        self.acknowledged = 0
        self.sealed = False

    def seal(self) -> None:
        """No more records will be added."""
        self.sealed = True
        self._complete_if_done()

    def settle(self, error: KafkaError | None) -> None:
        if self.future.done():  # failed already, or the publishing task was cancelled
            return
        if error is not None:
            self.future.set_exception(KafkaException(error))
            return
        self.acknowledged += 1
        self._complete_if_done()

    def _complete_if_done(self) -> None:
        if self.sealed and self.acknowledged == self.produced and not self.future.done():
            self.future.set_result(None)


_Report = tuple[_Delivery, str, KafkaError | None]
_Record = tuple[str, bytes | None, bytes | None, Headers]


class Publisher:
    """Publishes envelopes with key `envelope.key()` and headers `envelope.headers()`.

    Bound to the event loop it is started on.
    """

    def __init__(self, kafka: KafkaSettings, *, client_id: str) -> None:
        config = producer_config(kafka, client_id)
        self.max_message_bytes = int(config["message.max.bytes"])
        """The biggest record this producer sends (librdkafka refuses bigger ones locally)."""
        # librdkafka's own log lines go through logging (hence structlog), not raw to stderr.
        self._producer = Producer(config, logger=logging.getLogger("flywheel.kafka"))
        self._request_timeout_s = kafka.request_timeout_s
        self._topic = kafka.topic
        # Appended to by whichever thread serves librdkafka's callbacks, drained on the loop.
        self._reports: deque[_Report] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = threading.Event()
        self._poller: threading.Thread | None = None

    def start(self) -> None:
        """Start serving delivery reports, on the running event loop."""
        if self._poller is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._running.set()
        self._poller = threading.Thread(
            target=self._serve_reports, name="kafka-delivery", daemon=True
        )
        self._poller.start()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout_s`), then stop the report thread."""
        await self.flush(timeout_s)
        self._running.clear()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
            self._poller = None
        self._drain()

    async def publish(self, envelope: Envelope[Any], *, topic: str | None = None) -> None:
        """Publish to `topic` (default: the event type's topic) and wait for Kafka's
        acknowledgement."""
        await self._publish([self._record(envelope, topic)])

    async def publish_many(
        self, envelopes: Iterable[Envelope[Any]], *, topic: str | None = None
    ) -> None:
        """Publish all, letting librdkafka batch them; returns when every one is acknowledged."""
        await self._publish(self._record(envelope, topic) for envelope in envelopes)

    def _record(self, envelope: Envelope[Any], topic: str | None) -> _Record:
        topic = topic or self._topic(envelope.event_type)
        return (topic, encode(envelope), envelope.key(), envelope.headers())

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Headers
    ) -> None:
        """Publish raw bytes (dead letters, rejected logs; None is a tombstone) and wait for the
        acknowledgement."""
        await self._publish([(topic, value, key, headers)])

    async def flush(self, timeout_s: float) -> int:
        """Wait for queued records; returns how many are still undelivered."""
        remaining: int = await asyncio.to_thread(self._producer.flush, timeout_s)
        self._drain()
        return remaining

    async def check_connection(self) -> None:
        """Raise unless a broker answers a metadata request within the request timeout."""
        await asyncio.to_thread(self._producer.list_topics, timeout=self._request_timeout_s)

    async def _publish(self, records: Iterable[_Record]) -> None:
        if self._loop is None or not self._running.is_set():
            raise RuntimeError("Publisher is not started")
        delivery = _Delivery(self._loop.create_future())
        for topic, value, key, headers in records:
            on_delivery = partial(self._on_delivery, delivery, topic)
            while True:
                try:
                    self._producer.produce(
                        topic,
                        value=value,
                        key=key,
                        headers=cast("list[tuple[str, str | bytes | None]]", headers),
                        on_delivery=on_delivery,
                    )
                except BufferError:
                    # Local queue full: the report thread drains it as the broker acknowledges.
                    await asyncio.sleep(_QUEUE_FULL_WAIT_S)
                else:
                    break
            delivery.produced += 1
        delivery.seal()
        await delivery.future

    def _on_delivery(
        self, delivery: _Delivery, topic: str, error: KafkaError | None, _message: Message
    ) -> None:
        self._reports.append((delivery, topic, error))

    def _serve_reports(self) -> None:
        loop = self._loop
        assert loop is not None
        while self._running.is_set():
            self._producer.poll(_POLL_S)
            if self._reports:
                # RuntimeError: the loop is closed, so nobody is waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        produced: Counter[str] = Counter()
        while self._reports:
            delivery, topic, error = self._reports.popleft()
            delivery.settle(error)
            if error is None:
                produced[topic] += 1
        for topic, count in produced.items():
            metrics.EVENTS_PRODUCED.labels(topic).inc(count)
