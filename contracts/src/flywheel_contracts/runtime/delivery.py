"""Delivery rules: how a handler's failure is classified, retried, waited out or dead-lettered.

Every consumed message ends in one of three places: its handler's effect, a duplicate skip, or
`<topic>.dlq` with the reason in `dlq.*` headers. Which one depends on the kind of failure:

- a *retryable* error (`RetryableError`, a connection or timeout error, an unreachable Mongo,
  Elasticsearch or NMP) is an outage, not bad input. It is retried in process (`RetryPolicy`),
  and when those attempts are spent the message is not committed but delivered again, after a
  delay that doubles with every redelivery round up to a cap (`RedeliveryPolicy`), for as long
  as the outage lasts. It is never dead-lettered. While it waits, `OutageHealth` makes the
  service unready (it is alive: liveness stays green) and names the message and its last error.
- a *permanent* error, an unexpected one (a bug) or an undecodable message goes to the dead
  letters at once.

Nothing here touches Kafka, so each rule is tested on plain values.
"""

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import httpx
from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure

from flywheel_contracts.catalog import payload_class
from flywheel_contracts.errors import InvalidEvent, PermanentError, RetryableError
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime.settings import DeliverySettings

Headers = list[tuple[str, bytes]]

DLQ_REASON = "dlq.reason"
DLQ_EXCEPTION = "dlq.exception"
DLQ_ORIGIN_TOPIC = "dlq.origin.topic"
DLQ_ORIGIN_PARTITION = "dlq.origin.partition"
DLQ_ORIGIN_OFFSET = "dlq.origin.offset"
DLQ_SERVICE = "dlq.service"
DLQ_ATTEMPTS = "dlq.attempts"
DLQ_KIND = "dlq.kind"
DLQ_ERROR = "dlq.error"
DLQ_TRUNCATED = "dlq.truncated"
DLQ_ORIGINAL_SIZE = "dlq.original.size"
DLQ_PREFIX = "dlq."
REPLAY_FROM = "replay.from"
"""Set by `flywheel dlq replay`: the dead letter (`<topic>.dlq@<offset>`) a message came from."""
REPLAY_AT = "replay.at"
_MAX_EXCEPTION_TEXT = 2000

RECORD_OVERHEAD_BYTES = 4096
"""Kept free under `message.max.bytes` for the record batch, key and header framing."""


class Outcome(StrEnum):
    """How the handling of one message ended."""

    OK = "ok"
    DUPLICATE = "duplicate"
    RETRIED = "retried"
    """Succeeded after at least one retry."""
    DEAD_LETTERED = "dead_lettered"
    FAILED = "failed"
    """Neither handled nor dead-lettered: a retryable failure outlasted the in-process retries
    (an outage), or its dead letter could not be written. Not committed, so the message is
    delivered again after the redelivery delay."""


class Reason(StrEnum):
    """Why a message was dead-lettered (the `dlq.reason` header)."""

    INVALID_EVENT = "invalid_event"
    PERMANENT_ERROR = "permanent_error"
    UNEXPECTED_ERROR = "unexpected_error"
    RETRIES_EXHAUSTED = "retries_exhausted"
    """No longer written (retryable failures are waited out, never dead-lettered); kept because
    dead letters written by earlier versions carry it."""


class ErrorKind(StrEnum):
    """What exactly was wrong (the `dlq.kind` header): the poison class of an undecodable
    message, or `handler` when a decoded event's handler failed."""

    TOMBSTONE = "tombstone"
    """No value at all (a null value, Kafka's deletion marker)."""
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    TOO_DEEP = "too_deep"
    """JSON nested deeper than the parser's recursion limit."""
    NOT_AN_ENVELOPE = "not_an_envelope"
    """JSON, but not an object with an `event_type`."""
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    WRONG_EVENT_TYPE = "wrong_event_type"
    """A valid event of another type than the topic carries."""
    NEWER_SCHEMA_VERSION = "newer_schema_version"
    """A `schema_version` above the one this service knows (it has to be upgraded first)."""
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    INVALID_EVENT = "invalid_event"
    """The envelope or payload fails validation."""
    HANDLER = "handler"


def classify_undecodable(raw: bytes | None, expected: type[EventPayload]) -> ErrorKind:
    """The poison class of a message that did not decode as an `expected` event.

    Called only after decoding failed, so the happy path parses each message once.
    """
    if raw is None:
        return ErrorKind.TOMBSTONE
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ErrorKind.NOT_UTF8
    try:
        data = json.loads(text)
    except RecursionError:
        return ErrorKind.TOO_DEEP
    except ValueError:
        return ErrorKind.NOT_JSON
    if not isinstance(data, dict) or not isinstance(data.get("event_type"), str):
        return ErrorKind.NOT_AN_ENVELOPE
    event_type, version = data["event_type"], data.get("schema_version")
    if event_type != expected.EVENT_TYPE:
        try:
            payload_class(event_type)
        except KeyError:
            return ErrorKind.UNKNOWN_EVENT_TYPE
        return ErrorKind.WRONG_EVENT_TYPE
    if type(version) is int and version > expected.SCHEMA_VERSION:
        return ErrorKind.NEWER_SCHEMA_VERSION
    if type(version) is not int or version < 1:
        return ErrorKind.UNSUPPORTED_SCHEMA_VERSION
    return ErrorKind.INVALID_EVENT


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

    When `max_attempts` are spent the message is not dead-lettered: its outcome is FAILED and it
    is redelivered (`RedeliveryPolicy`). No jitter: retries are per message within one consumer,
    so there is no herd to spread out.
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


@dataclass(frozen=True)
class RedeliveryPolicy:
    """Exponential backoff between redelivery rounds of one message held up by an outage.

    A round is one delivery with its in-process retries. The delay before the next round doubles
    from `base_delay_s` up to `max_delay_s` and stays there for as long as the outage lasts.
    """

    base_delay_s: float = 5.0
    max_delay_s: float = 60.0

    def delay_after_round(self, round_: int) -> float:
        """Seconds to wait after failed round number `round_` (1-based) before the next one."""
        return float(min(self.base_delay_s * 2 ** (max(round_, 1) - 1), self.max_delay_s))


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
    kind: ErrorKind = ErrorKind.HANDLER,
) -> Headers:
    """The original headers (envelope mirrors kept for tooling) plus why and where it failed.

    `dlq.*` headers from an earlier dead-lettering are replaced, so a replayed message that fails
    again carries only its latest failure.
    """
    kept = [(name, value) for name, value in original if not name.startswith(DLQ_PREFIX)]
    return [
        *kept,
        (DLQ_REASON, reason.value.encode()),
        (DLQ_KIND, kind.value.encode()),
        (DLQ_ERROR, str(exc)[:_MAX_EXCEPTION_TEXT].encode()),
        (DLQ_EXCEPTION, describe_exception(exc).encode()),
        (DLQ_ORIGIN_TOPIC, origin.topic.encode()),
        (DLQ_ORIGIN_PARTITION, str(origin.partition).encode()),
        (DLQ_ORIGIN_OFFSET, str(origin.offset).encode()),
        (DLQ_SERVICE, service.encode()),
        (DLQ_ATTEMPTS, str(attempts).encode()),
    ]


def record_size(value: bytes | None, key: bytes | None, headers: Headers) -> int:
    """Bytes a record's value, key and headers take (framing aside)."""
    return (
        len(value or b"") + len(key or b"") + sum(len(name) + len(data) for name, data in headers)
    )


def fit_dead_letter(
    value: bytes | None, key: bytes | None, headers: Headers, max_bytes: int
) -> tuple[bytes | None, Headers]:
    """The dead letter as it can be written to a broker taking records up to `max_bytes`.

    A value that does not fit (the original was close to the broker's limit and the `dlq.*`
    headers tip it over) keeps its first bytes, and the headers say so (`dlq.truncated`) and
    how big it was (`dlq.original.size`). Everything else is unchanged.
    """
    if value is None:
        return value, headers
    marks: Headers = [(DLQ_TRUNCATED, b"true"), (DLQ_ORIGINAL_SIZE, str(len(value)).encode())]
    budget = max_bytes - RECORD_OVERHEAD_BYTES - record_size(None, key, [*headers, *marks])
    if record_size(value, key, headers) <= max_bytes - RECORD_OVERHEAD_BYTES:
        return value, headers
    return value[: max(budget, 0)], [*headers, *marks]


class DeadLetterHealth:
    """Whether dead letters can be written; a readiness check of every consuming service.

    A message whose dead letter cannot be written is neither committed nor dropped: it is
    delivered again, and until a dead letter goes through the service reports unready with why.
    """

    def __init__(self) -> None:
        self.failure: str | None = None

    def failed(self, why: str) -> None:
        self.failure = why

    def recovered(self) -> None:
        self.failure = None

    async def check(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"a dead letter cannot be written: {self.failure}")


@dataclass
class _Waiting:
    origin: Origin
    error: str
    rounds: int
    attempts: int
    next_delay_s: float
    seen_at: float


class OutageHealth:
    """Which messages wait on an outage; a readiness check of every consuming service.

    A message whose retryable failure outlasts the in-process retries is redelivered until it
    goes through; meanwhile the service is unready, and the check names the message's topic,
    partition, offset, how long it has been redelivered and its last error. One entry per
    partition (a consumer handles a partition's messages in order). An entry not refreshed
    within `stale_after_s` is dropped: the partition was given to another instance.
    """

    def __init__(
        self, *, stale_after_s: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._waiting: dict[tuple[str, int], _Waiting] = {}

    def waiting(
        self, origin: Origin, error: str, *, rounds: int, attempts: int, next_delay_s: float
    ) -> None:
        self._waiting[(origin.topic, origin.partition)] = _Waiting(
            origin, error, rounds, attempts, next_delay_s, self._clock()
        )

    def through(self, origin: Origin) -> None:
        """The message at `origin` (or a later one of its partition) has been handled."""
        self._waiting.pop((origin.topic, origin.partition), None)

    def messages(self) -> list[str]:
        """One line per waiting message, oldest partition first."""
        now = self._clock()
        for key, entry in list(self._waiting.items()):
            if now - entry.seen_at > self._stale_after_s:
                del self._waiting[key]
        return [
            f"{w.origin.topic}[{w.origin.partition}]@{w.origin.offset} waits on an outage "
            f"(round {w.rounds}, {w.attempts} attempts, next in {w.next_delay_s:g}s): {w.error}"
            for w in self._waiting.values()
        ]

    async def check(self) -> None:
        lines = self.messages()
        if lines:
            raise RuntimeError("; ".join(lines))
