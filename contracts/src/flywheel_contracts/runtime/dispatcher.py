"""Handling of one consumed message: decode, skip duplicates, run the handler with retries,
wait out outages, and dead-letter what cannot succeed. It knows nothing of the Kafka client, so it
is tested with fakes.

The caller commits the offset for every outcome except FAILED, which it redelivers after
`redelivery_delay(origin)`. `dispatch` never raises. The rules:

- Bad input ends in `<topic>.dlq` at once (a route's `on_invalid` is told first of an event of
  its type that fails validation): a tombstone, bytes that are not UTF-8, JSON too deep
  to parse, an event of the wrong type or a newer schema version, a handler's permanent error
  or its bug (an unexpected exception).
- A retryable failure (an outage) is retried in process per the `RetryPolicy`; when those
  attempts are spent the outcome is FAILED, never a dead letter. The message comes back after a
  delay doubling per round up to the `RedeliveryPolicy`'s cap, for as long as the outage lasts;
  each round logs one `event.waiting_on_outage` line (the attempts inside it log at debug), and
  `OutageHealth` keeps the service unready, naming the message and its last error, until it
  goes through.
- FAILED also means a dead letter that could not be written; the `DeadLetterHealth` then makes
  the service unready until one can.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar, cast
from uuid import UUID

import structlog

from flywheel_contracts.catalog import dlq_topic
from flywheel_contracts.envelope import Envelope, decode
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime import metrics
from flywheel_contracts.runtime.delivery import (
    DeadLetterHealth,
    ErrorKind,
    Headers,
    Origin,
    OutageHealth,
    Outcome,
    Reason,
    RedeliveryPolicy,
    RetryPolicy,
    classify_undecodable,
    dead_letter_headers,
    dead_letter_reason,
    describe_exception,
    fit_dead_letter,
    is_retryable,
    record_size,
)
from flywheel_contracts.runtime.logging import bound_fields, event_fields

P = TypeVar("P", bound=EventPayload)


class Handler(Protocol[P]):
    """A subscriber's function: takes effect for one event and awaits the events it publishes."""

    def __call__(self, event: Envelope[P], /) -> Awaitable[None]: ...


class InvalidHandler(Protocol):
    """Told of a message of the topic's event type that fails validation (`raw`, the error)
    before it is dead-lettered, e.g. to fail the run it asked for with the reason."""

    def __call__(self, raw: bytes, error: InvalidEvent, /) -> Awaitable[None]: ...


@dataclass(frozen=True)
class Route(Generic[P]):
    """What a topic carries and who handles it."""

    payload_type: type[P]
    handler: Handler[P]
    on_invalid: InvalidHandler | None = None


@dataclass(frozen=True)
class InboundMessage:
    """A consumed Kafka message, detached from the client library."""

    origin: Origin
    key: bytes | None
    value: bytes | None
    """None for a tombstone."""
    headers: Sequence[tuple[str, bytes]]


class RawSender(Protocol):
    async def send(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Headers
    ) -> None: ...


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
    outage: bool = False
    """FAILED because a retryable failure outlasted the in-process retries."""


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
        max_dead_letter_bytes: int = 4 * 1024 * 1024,
        health: DeadLetterHealth | None = None,
        redelivery: RedeliveryPolicy | None = None,
        outages: OutageHealth | None = None,
    ) -> None:
        self._service = service
        self._routes = dict(routes)
        self._dead_letters = dead_letters
        self._processed = processed
        self._policy = policy
        self._sleep = sleep
        self._max_dead_letter_bytes = max_dead_letter_bytes
        self.health = health or DeadLetterHealth()
        self._redelivery = redelivery or RedeliveryPolicy()
        self.outages = outages or OutageHealth()
        # Per partition: the offset being redelivered and how many rounds it has failed.
        self._rounds: dict[tuple[str, int], tuple[int, int]] = {}
        self._log = structlog.get_logger("flywheel.delivery")

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self._routes)

    def redelivery_delay(self, origin: Origin | None) -> float:
        """Seconds to wait before the message at `origin`, which just FAILED, comes back."""
        return self._redelivery.delay_after_round(self._failed_rounds(origin))

    def _failed_rounds(self, origin: Origin | None) -> int:
        if origin is None:
            return 1
        offset, rounds = self._rounds.get((origin.topic, origin.partition), (origin.offset, 1))
        return rounds if offset == origin.offset else 1

    async def dispatch(self, message: InboundMessage) -> Outcome:
        started = time.perf_counter()
        origin = message.origin
        with bound_fields(topic=origin.topic, partition=origin.partition, offset=origin.offset):
            try:
                result = await self._process(message)
            except Exception as exc:
                # A bug in the delivery path itself: the message still goes to the dead letters.
                result = await self._dead_letter(
                    message, exc, Reason.UNEXPECTED_ERROR, 0, ErrorKind.HANDLER
                )
            rounds = self._count_round(origin, result)
            if rounds > 1 and result.outcome is Outcome.OK:
                # Went through at the first attempt of a redelivery: it was retried all the same.
                result = replace(result, outcome=Outcome.RETRIED)
            self._record(origin, result, time.perf_counter() - started, rounds)
        return result.outcome

    def _count_round(self, origin: Origin, result: _Result) -> int:
        """The rounds this message has failed so far (FAILED) or took (otherwise)."""
        key = (origin.topic, origin.partition)
        offset, before = self._rounds.get(key, (origin.offset, 0))
        before = before if offset == origin.offset else 0
        if result.outcome is Outcome.FAILED:
            self._rounds[key] = (origin.offset, before + 1)
            if result.outage and result.error is not None:
                self.outages.waiting(
                    origin,
                    describe_exception(result.error),
                    rounds=before + 1,
                    attempts=result.attempts,
                    next_delay_s=self._redelivery.delay_after_round(before + 1),
                )
            return before + 1
        self._rounds.pop(key, None)
        self.outages.through(origin)
        return before + 1

    async def _process(self, message: InboundMessage) -> _Result:
        route = self._routes[message.origin.topic]
        try:
            if message.value is None:
                raise InvalidEvent("a tombstone (no value) is not an event")
            envelope = _decode_as(message.value, route.payload_type)
        except InvalidEvent as error:
            kind = classify_undecodable(message.value, route.payload_type)
            if kind is ErrorKind.INVALID_EVENT and message.value is not None and route.on_invalid:
                try:
                    await route.on_invalid(message.value, error)
                except Exception as hook_error:
                    if is_retryable(hook_error):  # an outage: waited out like a handler's
                        return _Result(Outcome.FAILED, 1, error=hook_error, outage=True)
                    self._log.error(
                        "event.invalid_hook_failed", error=describe_exception(hook_error)
                    )
            return await self._dead_letter(message, error, Reason.INVALID_EVENT, 0, kind)
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
                    # An outage, not bad input: redelivered until it is over, never dead-lettered.
                    return _Result(Outcome.FAILED, attempt, envelope, exc, outage=True)
                result = await self._dead_letter(message, exc, reason, attempt)
                return _Result(result.outcome, attempt, envelope, exc, reason)
            return _Result(Outcome.OK if attempt == 1 else Outcome.RETRIED, attempt, envelope)

    async def _back_off(self, topic: str, attempt: int, exc: BaseException) -> None:
        delay = self._policy.delay_after(attempt)
        metrics.HANDLER_RETRIES.labels(topic).inc()
        # Debug only: an outage logs one line per redelivery round (`event.waiting_on_outage`).
        self._log.debug(
            "event.retrying", attempt=attempt, delay_s=delay, error=describe_exception(exc)
        )
        await self._sleep(delay)

    async def _dead_letter(
        self,
        message: InboundMessage,
        exc: BaseException,
        reason: Reason,
        attempts: int,
        kind: ErrorKind = ErrorKind.HANDLER,
    ) -> _Result:
        origin = message.origin
        headers = dead_letter_headers(
            message.headers,
            origin=origin,
            service=self._service,
            reason=reason,
            exc=exc,
            attempts=attempts,
            kind=kind,
        )
        value, headers = fit_dead_letter(
            message.value, message.key, headers, self._max_dead_letter_bytes
        )
        if value is not message.value:
            self._log.warning(
                "event.dead_letter_truncated",
                original_bytes=len(message.value or b""),
                kept_bytes=len(value or b""),
                max_bytes=self._max_dead_letter_bytes,
            )
        try:
            await self._dead_letters.send(dlq_topic(origin.topic), value, message.key, headers)
        except Exception as send_error:
            why = (
                f"{dlq_topic(origin.topic)} refused a {record_size(value, message.key, headers)}"
                f"-byte record: {describe_exception(send_error)}"
            )
            self.health.failed(why)
            self._log.error(
                "event.dead_letter_failed",
                reason=reason.value,
                kind=kind.value,
                error=describe_exception(exc),
                send_error=why,
            )
            return _Result(Outcome.FAILED, attempts, error=exc, reason=reason)
        self.health.recovered()
        metrics.EVENTS_DEAD_LETTERED.labels(origin.topic, reason.value).inc()
        return _Result(Outcome.DEAD_LETTERED, attempts, error=exc, reason=reason)

    def _record(self, origin: Origin, result: _Result, seconds: float, rounds: int) -> None:
        topic = origin.topic
        metrics.EVENTS_CONSUMED.labels(topic, result.outcome.value).inc()
        metrics.HANDLER_SECONDS.labels(topic).observe(seconds)
        if result.outcome is Outcome.DUPLICATE:
            metrics.DUPLICATES_SKIPPED.labels(topic).inc()
        fields: dict[str, Any] = {
            "outcome": result.outcome.value,
            "duration_ms": round(seconds * 1000, 3),
            "attempts": result.attempts,
        }
        if rounds > 1 or result.outage:
            fields["rounds"] = rounds
        if result.envelope is not None:
            fields.update(event_fields(result.envelope))
        if result.error is not None:
            if result.reason is not None:
                fields["reason"] = result.reason.value
            fields["error"] = describe_exception(result.error)
        if result.outage:
            # The one line of a redelivery round: the service waits, the message is kept.
            delay = self._redelivery.delay_after_round(rounds)
            self._log.warning("event.waiting_on_outage", redeliver_in_s=delay, **fields)
        elif result.outcome in (Outcome.OK, Outcome.DUPLICATE, Outcome.RETRIED):
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
