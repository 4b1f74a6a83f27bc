"""Delivery rules: how a handler's failure is classified, retried and dead-lettered."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import httpx
from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure

from flywheel_contracts.errors import InvalidEvent, PermanentError, RetryableError
from flywheel_contracts.runtime.settings import DeliverySettings

Headers = list[tuple[str, bytes]]

DLQ_REASON = "dlq.reason"
DLQ_EXCEPTION = "dlq.exception"
DLQ_ORIGIN_TOPIC = "dlq.origin.topic"
DLQ_ORIGIN_PARTITION = "dlq.origin.partition"
DLQ_ORIGIN_OFFSET = "dlq.origin.offset"
DLQ_SERVICE = "dlq.service"
DLQ_ATTEMPTS = "dlq.attempts"
_DLQ_PREFIX = "dlq."
_MAX_EXCEPTION_TEXT = 2000


class Outcome(StrEnum):
    """How the handling of one message ended."""

    OK = "ok"
    DUPLICATE = "duplicate"
    RETRIED = "retried"
    """Succeeded after at least one retry."""
    DEAD_LETTERED = "dead_lettered"
    FAILED = "failed"
    """Neither handled nor dead-lettered (the dead-letter topic was unreachable): not committed,
    so the message is delivered again."""


class Reason(StrEnum):
    """Why a message was dead-lettered (the `dlq.reason` header)."""

    INVALID_EVENT = "invalid_event"
    PERMANENT_ERROR = "permanent_error"
    UNEXPECTED_ERROR = "unexpected_error"
    RETRIES_EXHAUSTED = "retries_exhausted"


_TRANSIENT: tuple[type[BaseException], ...] = (
    RetryableError,
    ConnectionError,
    TimeoutError,
    ConnectionFailure,  # pymongo: AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError
    httpx.TransportError,  # connect/read timeouts and network errors
)


def is_retryable(exc: BaseException) -> bool:
    """Whether `exc` is transient, so the same input may succeed on a later attempt."""
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        return isinstance(error, KafkaError) and bool(error.retriable())
    return isinstance(exc, _TRANSIENT)


def dead_letter_reason(exc: BaseException) -> Reason:
    """The reason recorded for a non-retryable failure."""
    if isinstance(exc, InvalidEvent):
        return Reason.INVALID_EVENT
    # A ValidationError inside a handler is a payload the code cannot accept: retrying won't help.
    if isinstance(exc, PermanentError | ValidationError):
        return Reason.PERMANENT_ERROR
    return Reason.UNEXPECTED_ERROR


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for retryable failures, inside the handling of one message.

    No jitter: retries are per message within one consumer, so there is no herd to spread out.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> "RetryPolicy":
        return cls(settings.max_attempts, settings.backoff_base_s, settings.backoff_max_s)

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s))

    def allows_retry_after(self, attempt: int) -> bool:
        return attempt < self.max_attempts


def describe_exception(exc: BaseException) -> str:
    """`module.Class: message`, bounded so a huge validation error cannot bloat a header."""
    kind = type(exc)
    text = f"{kind.__module__}.{kind.__qualname__}: {exc}"
    return text[:_MAX_EXCEPTION_TEXT]


@dataclass(frozen=True)
class Origin:
    """Where a message was read from."""

    topic: str
    partition: int
    offset: int


def dead_letter_headers(
    original: Sequence[tuple[str, bytes]],
    *,
    origin: Origin,
    service: str,
    reason: Reason,
    exc: BaseException,
    attempts: int,
) -> Headers:
    """The original headers (envelope mirrors kept for tooling) plus why and where it failed.

    `dlq.*` headers from an earlier dead-lettering are replaced, so a replayed message that fails
    again carries only its latest failure.
    """
    kept = [(name, value) for name, value in original if not name.startswith(_DLQ_PREFIX)]
    return [
        *kept,
        (DLQ_REASON, reason.value.encode()),
        (DLQ_EXCEPTION, describe_exception(exc).encode()),
        (DLQ_ORIGIN_TOPIC, origin.topic.encode()),
        (DLQ_ORIGIN_PARTITION, str(origin.partition).encode()),
        (DLQ_ORIGIN_OFFSET, str(origin.offset).encode()),
        (DLQ_SERVICE, service.encode()),
        (DLQ_ATTEMPTS, str(attempts).encode()),
    ]
