"""The consume loop of a service that handles events: the kit's `KafkaConsumer` feeding the
`EventDispatcher`.

A service has one consumer (group `flywheel.<service>`) over all its topics. Messages are handled
one at a time, in partition order. Offsets are committed by hand after the dispatcher returned,
i.e. after the handler's effect and the publishes it awaited, once per batch read (a crash in
between only redelivers messages that the idempotency marks then skip). A message whose outcome
is FAILED (an outage outlasting the in-process retries, or an unwritable dead letter) holds its
partition: the rest of the batch read from that partition is left, the partition is paused and
set back to the message, and released after the dispatcher's redelivery delay, which grows per
round of the same message up to a cap. Other partitions go on meanwhile, and the loop keeps
polling, so the consumer stays in its group and healthy while it waits.

The consumer reports librdkafka statistics to the kit's `ConsumerHealth` from inside its polls,
so a loop that stops polling (a hung handler, the stall test hook) turns health red.
"""

import asyncio
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import structlog
from confluent_kafka import Message

from flywheel_contracts.runtime.consumer import PartitionKey
from flywheel_contracts.runtime.consumer_health import StallGate
from flywheel_contracts.runtime.delivery import Origin, Outcome
from flywheel_contracts.runtime.dispatcher import InboundMessage

# How long one read waits for a message before the loop looks at its stop signal again.
_POLL_INTERVAL_S = 0.1
# Messages read at once; each is still handled on its own, in order.
_BATCH = 100

_log = structlog.get_logger("flywheel.event_consumer")


def inbound(raw: Message) -> InboundMessage:
    topic, partition, offset = raw.topic(), raw.partition(), raw.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("a consumed message always has a topic, partition and offset")
    return InboundMessage(
        origin=Origin(topic=topic, partition=partition, offset=offset),
        key=raw.key(),
        value=raw.value(),  # None: a tombstone, which the dispatcher dead-letters
        headers=[(name, _as_bytes(value)) for name, value in _header_items(raw)],
    )


def _header_items(raw: Message) -> list[tuple[str, str | bytes | None]]:
    headers = raw.headers() or []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def _as_bytes(value: str | bytes | None) -> bytes:
    if value is None:  # a header without a value
        return b""
    return value if isinstance(value, bytes) else value.encode()


class Reader(Protocol):
    """What the loop needs of its consumer (`KafkaConsumer`)."""

    async def next_messages(self, max_messages: int, timeout_s: float) -> list[Message]: ...

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None: ...

    async def hold(self, topic: str, partition: int, offset: int) -> None: ...

    async def release(self, topic: str, partition: int) -> None: ...


class Dispatcher(Protocol):
    """What the loop needs of its dispatcher (`EventDispatcher`)."""

    async def dispatch(self, message: InboundMessage) -> Outcome: ...

    def redelivery_delay(self, origin: Origin | None) -> float: ...


class EventConsumer:
    """Runs `dispatcher` over `consumer`'s messages from `run()` until `stop()`."""

    def __init__(
        self,
        consumer: AbstractAsyncContextManager[Reader],
        dispatcher: Dispatcher,
        *,
        stall: StallGate | None = None,
        batch: int = _BATCH,
        poll_interval_s: float = _POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """With the stall test hook, every read and every message first waits for `stall`
        to be open, as a hung handler would."""
        self._consumer = consumer
        self._dispatcher = dispatcher
        self._stall = stall
        self._batch = batch
        self._poll_interval_s = poll_interval_s
        self._stopping = asyncio.Event()
        self._clock = clock
        self._held: dict[PartitionKey, float] = {}
        """Partitions held behind a FAILED message, with when (on `clock`) to release them."""

    def stop(self) -> None:
        """Finish the message in hand, commit, leave the group and return from `run`."""
        self._stopping.set()

    async def run(self) -> None:
        async with self._consumer as consumer:
            while not self._stopping.is_set():
                await self._passage()
                await self._release_due(consumer)
                messages = await consumer.next_messages(self._batch, self._poll_interval_s)
                await self._handle(consumer, messages)

    async def _handle(self, consumer: Reader, messages: list[Message]) -> None:
        handled: dict[PartitionKey, int] = {}
        held: set[PartitionKey] = set()
        try:
            for raw in messages:
                if self._stopping.is_set():
                    return
                partition: PartitionKey = (raw.topic() or "", raw.partition() or 0)
                if partition in held:
                    continue  # behind a FAILED message: read again after the seek
                await self._passage()
                outcome, origin = await self._dispatch(raw)
                if outcome is Outcome.FAILED:
                    held.add(partition)
                    await self._hold(consumer, raw, origin)
                else:
                    handled[partition] = (raw.offset() or 0) + 1
        finally:
            await consumer.commit(handled)

    async def _dispatch(self, raw: Message) -> tuple[Outcome, Origin | None]:
        origin: Origin | None = None
        try:
            message = inbound(raw)
            origin = message.origin
            return await self._dispatcher.dispatch(message), origin
        except Exception:
            # `dispatch` dead-letters every failure; should it ever raise, the message is
            # redelivered rather than silently skipped by the next commit.
            _log.exception("event.dispatch_crashed", topic=raw.topic(), offset=raw.offset())
            return Outcome.FAILED, origin

    async def _hold(self, consumer: Reader, raw: Message, origin: Origin | None) -> None:
        # Give the unreachable dependency time before the same message comes back: the delay
        # doubles with each round of this message, up to the redelivery cap. A stop before the
        # release leaves the message uncommitted, for whoever next holds the partition.
        topic, partition = raw.topic() or "", raw.partition() or 0
        await consumer.hold(topic, partition, raw.offset() or 0)
        self._held[(topic, partition)] = self._clock() + self._dispatcher.redelivery_delay(origin)

    async def _release_due(self, consumer: Reader) -> None:
        now = self._clock()
        for (topic, partition), due in list(self._held.items()):
            if due <= now:
                del self._held[(topic, partition)]
                await consumer.release(topic, partition)

    async def _passage(self) -> None:
        if self._stall is not None:
            await self._stall.passage()
