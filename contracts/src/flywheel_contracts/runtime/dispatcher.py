"""Handling of one consumed message: decode, skip duplicates, run the handler with retries, and
dead-letter what cannot succeed. It knows nothing of faststream, so it is tested with fakes.

The caller commits the offset for every outcome except FAILED, which it redelivers.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast
from uuid import UUID

import structlog

from flywheel_contracts.catalog import dlq_topic
from flywheel_contracts.envelope import Envelope, decode
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime import metrics
from flywheel_contracts.runtime.delivery import (
    Headers,
    Origin,
    Outcome,
    Reason,
    RetryPolicy,
    dead_letter_headers,
    dead_letter_reason,
    describe_exception,
    is_retryable,
)
from flywheel_contracts.runtime.logging import bound_fields, event_fields

P = TypeVar("P", bound=EventPayload)


class Handler(Protocol[P]):
    """A subscriber's function: takes effect for one event and awaits the events it publishes."""

    def __call__(self, event: Envelope[P], /) -> Awaitable[None]: ...


@dataclass(frozen=True)
class Route(Generic[P]):
    """What a topic carries and who handles it."""

    payload_type: type[P]
    handler: Handler[P]


@dataclass(frozen=True)
class InboundMessage:
    """A consumed Kafka message, detached from the client library."""

    origin: Origin
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]


class RawSender(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None: ...


class ProcessedStore(Protocol):
    async def seen(self, event_id: UUID) -> bool: ...

    async def mark(self, event_id: UUID, event_type: str) -> None: ...


@dataclass(frozen=True)
class _Result:
    outcome: Outcome
    attempts: int
    envelope: Envelope[Any] | None = None
    error: BaseException | None = None
    reason: Reason | None = None


class EventDispatcher:
    """Routes each message of a service's topics to its handler under the delivery rules."""

    def __init__(
        self,
        *,
        service: str,
        routes: Mapping[str, Route[Any]],
        dead_letters: RawSender,
        processed: ProcessedStore,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._service = service
        self._routes = dict(routes)
        self._dead_letters = dead_letters
        self._processed = processed
        self._policy = policy
        self._sleep = sleep
        self._log = structlog.get_logger("flywheel.delivery")

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self._routes)

    async def dispatch(self, message: InboundMessage) -> Outcome:
        started = time.perf_counter()
        origin = message.origin
        with bound_fields(topic=origin.topic, partition=origin.partition, offset=origin.offset):
            result = await self._process(message)
            self._record(origin.topic, result, time.perf_counter() - started)
        return result.outcome

    async def _process(self, message: InboundMessage) -> _Result:
        route = self._routes[message.origin.topic]
        try:
            envelope = _decode_as(message.value, route.payload_type)
        except InvalidEvent as exc:
            return await self._dead_letter(message, exc, Reason.INVALID_EVENT, attempts=0)
        with bound_fields(**event_fields(envelope)):
            return await self._deliver(message, route, envelope)

    async def _deliver(
        self, message: InboundMessage, route: Route[Any], envelope: Envelope[Any]
    ) -> _Result:
        attempt = 0
        while True:
            attempt += 1
            try:
                if await self._processed.seen(envelope.event_id):
                    return _Result(Outcome.DUPLICATE, attempt, envelope)
                await route.handler(envelope)
                await self._processed.mark(envelope.event_id, envelope.event_type)
            except Exception as exc:
                if not is_retryable(exc):
                    reason = dead_letter_reason(exc)
                elif self._policy.allows_retry_after(attempt):
                    await self._back_off(message.origin.topic, attempt, exc)
                    continue
                else:
                    reason = Reason.RETRIES_EXHAUSTED
                result = await self._dead_letter(message, exc, reason, attempt)
                return _Result(result.outcome, attempt, envelope, exc, reason)
            return _Result(Outcome.OK if attempt == 1 else Outcome.RETRIED, attempt, envelope)

    async def _back_off(self, topic: str, attempt: int, exc: BaseException) -> None:
        delay = self._policy.delay_after(attempt)
        metrics.HANDLER_RETRIES.labels(topic).inc()
        self._log.warning(
            "event.retrying", attempt=attempt, delay_s=delay, error=describe_exception(exc)
        )
        await self._sleep(delay)

    async def _dead_letter(
        self, message: InboundMessage, exc: BaseException, reason: Reason, attempts: int
    ) -> _Result:
        origin = message.origin
        headers = dead_letter_headers(
            message.headers,
            origin=origin,
            service=self._service,
            reason=reason,
            exc=exc,
            attempts=attempts,
        )
        try:
            await self._dead_letters.send(
                dlq_topic(origin.topic), message.value, message.key, headers
            )
        except Exception as send_error:
            self._log.error(
                "event.dead_letter_failed",
                reason=reason.value,
                error=describe_exception(exc),
                send_error=describe_exception(send_error),
            )
            return _Result(Outcome.FAILED, attempts, error=exc, reason=reason)
        metrics.EVENTS_DEAD_LETTERED.labels(origin.topic, reason.value).inc()
        return _Result(Outcome.DEAD_LETTERED, attempts, error=exc, reason=reason)

    def _record(self, topic: str, result: _Result, seconds: float) -> None:
        metrics.EVENTS_CONSUMED.labels(topic, result.outcome.value).inc()
        metrics.HANDLER_SECONDS.labels(topic).observe(seconds)
        if result.outcome is Outcome.DUPLICATE:
            metrics.DUPLICATES_SKIPPED.labels(topic).inc()
        fields: dict[str, Any] = {
            "outcome": result.outcome.value,
            "duration_ms": round(seconds * 1000, 3),
            "attempts": result.attempts,
        }
        if result.envelope is not None:
            fields.update(event_fields(result.envelope))
        if result.error is not None:
            fields["reason"] = result.reason.value if result.reason else None
            fields["error"] = describe_exception(result.error)
        if result.outcome in (Outcome.OK, Outcome.DUPLICATE, Outcome.RETRIED):
            self._log.info("event.handled", **fields)
        elif result.outcome is Outcome.FAILED or result.reason is Reason.UNEXPECTED_ERROR:
            # Lost work or a bug, not bad input: keep the traceback.
            self._log.error("event.handled", exc_info=result.error, **fields)
        else:
            self._log.warning("event.handled", **fields)


def _decode_as(raw: bytes, payload_type: type[P]) -> Envelope[P]:
    envelope = decode(raw)
    if not isinstance(envelope.payload, payload_type):
        raise InvalidEvent(
            f"expected {payload_type.EVENT_TYPE}, got {envelope.event_type} on this topic"
        )
    return cast(Envelope[P], envelope)
