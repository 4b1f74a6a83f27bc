"""The consuming side on faststream's confluent broker.

A service has one consumer (group `flywheel.<service>`) over all its topics. Offsets are committed
by hand, after the dispatcher returned, i.e. after the handler's effect and the publishes it
awaited; a message whose outcome is FAILED (an outage outlasting the in-process retries, or an
unwritable dead letter) is sought back and delivered again after the dispatcher's redelivery
delay, which grows per round of the same message up to a cap.

The broker's clients report librdkafka statistics to the kit's `ConsumerHealth` (`stats_cb` runs
inside the consumer's poll, so they stop when the consumer stops polling).
"""

import asyncio
from typing import Any, cast

import structlog
from confluent_kafka import Message
from faststream.broker.message import StreamMessage
from faststream.confluent import KafkaBroker
from faststream.confluent.annotations import KafkaMessage
from faststream.confluent.config import ConfluentConfig

from flywheel_contracts.runtime.consumer_health import ClientHooks, StallGate
from flywheel_contracts.runtime.delivery import Origin, Outcome
from flywheel_contracts.runtime.dispatcher import EventDispatcher, InboundMessage
from flywheel_contracts.runtime.settings import ServiceSettings

# How often the consume loop hands control back while no message is waiting.
_POLL_INTERVAL_S = 0.1

_log = structlog.get_logger("flywheel.broker")


def create_broker(settings: ServiceSettings, hooks: ClientHooks | None = None) -> KafkaBroker:
    """A broker whose clients are idempotent producers (acks=all) and never create topics;
    `hooks` (librdkafka callbacks) go to its consumer and, as faststream shares one
    configuration, to its producer."""
    kafka = settings.kafka
    return KafkaBroker(
        kafka.bootstrap_servers,
        client_id=f"{settings.service_name}.{settings.instance_id}",
        config=cast(ConfluentConfig, {**kafka.client_config(), **(hooks or {})}),
        acks="all",
        enable_idempotence=True,
        linger_ms=int(kafka.linger_ms),
        allow_auto_create_topics=False,
        graceful_timeout=settings.shutdown_timeout_s,
        # The dispatcher writes one summary line per event; faststream's per-message lines would
        # double them.
        logger=None,
    )


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


async def _undecoded(message: StreamMessage[Any]) -> Any:
    """faststream's decoder, replaced: its default parses every body as JSON before any handler
    runs, and a RecursionError there (JSON nested 100,000 deep) escaped into faststream, which
    dropped the message without a trace. The dispatcher decodes, and dead-letters what fails."""
    return message.body


def attach(
    broker: KafkaBroker,
    dispatcher: EventDispatcher,
    settings: ServiceSettings,
    stall: StallGate | None = None,
) -> None:
    """Subscribe `dispatcher` to its topics on `broker` (before the broker starts). With the
    stall test hook, each message first waits for `stall` to be open."""
    kafka = settings.kafka

    async def on_message(message: KafkaMessage) -> None:
        raw = cast(Message, message.raw_message)  # a single message: this is no batch subscriber
        if stall is not None:
            # faststream polls again only once this returns: waiting here is a hung handler.
            await stall.passage()
        origin: Origin | None = None
        try:
            consumed = inbound(raw)
            origin = consumed.origin
            outcome = await dispatcher.dispatch(consumed)
        except Exception:
            # `dispatch` dead-letters every failure; should it ever raise, the message is
            # redelivered rather than silently skipped by the next commit.
            _log.exception("event.dispatch_crashed", topic=raw.topic(), offset=raw.offset())
            outcome = Outcome.FAILED
        if outcome is Outcome.FAILED:
            # Give the unreachable dependency time before the same message comes back: the
            # delay doubles with each round of this message, up to the redelivery cap.
            await asyncio.sleep(dispatcher.redelivery_delay(origin))
            await message.nack()
            return
        try:
            await message.ack()
        except Exception as exc:
            # The commit is lost, not the effect: the message is redelivered and then skipped
            # as a duplicate.
            _log.warning("offset.commit_failed", topic=raw.topic(), error=str(exc))

    membership = settings.group_membership()
    instance_id = membership.get("group.instance.id")
    subscriber = broker.subscriber(
        *dispatcher.topics,
        group_id=str(membership["group.id"]),
        group_instance_id=None if instance_id is None else str(instance_id),
        partition_assignment_strategy=str(membership["partition.assignment.strategy"]),
        auto_commit=False,
        no_ack=True,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=kafka.fetch_wait_max_ms,
        session_timeout_ms=int(membership["session.timeout.ms"]),
        max_poll_interval_ms=int(membership["max.poll.interval.ms"]),
        polling_interval=_POLL_INTERVAL_S,
        decoder=_undecoded,
    )
    subscriber(on_message)
