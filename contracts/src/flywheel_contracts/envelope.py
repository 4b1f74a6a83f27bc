"""The envelope every event travels in, and its byte encoding.

The JSON body is the truth; Kafka headers mirror the envelope fields so tools and the service
kit can route, log and dead-letter a message without parsing it.
"""

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from flywheel_contracts.catalog import payload_class
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.ids import derive_event_id
from flywheel_contracts.payload import EventPayload, Part
from flywheel_contracts.primitives import ServiceName, UtcDatetime
from flywheel_contracts.upcasters import upcast

P = TypeVar("P", bound=EventPayload)

EventType = Annotated[
    str,
    StringConstraints(max_length=128, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"),
]


class Envelope(Part, Generic[P]):
    """One event: identity, causality and the typed payload."""

    event_id: UUID = Field(description="Unique id; derived from the cause for derived events.")
    event_type: EventType = Field(description="`<aggregate>.<fact>`, equal to the topic name.")
    schema_version: int = Field(ge=1, description="Version of the payload schema.")
    occurred_at: UtcDatetime = Field(description="When the producer created the event (UTC).")
    run_id: UUID | None = Field(description="The run the event belongs to; None outside runs.")
    correlation_id: UUID = Field(description="Shared by every event descending from one request.")
    causation_id: UUID | None = Field(description="The event that caused this one, if any.")
    producer: ServiceName = Field(description="The service or client that published it.")
    payload: P

    @model_validator(mode="after")
    def _matches_payload(self) -> Self:
        payload = self.payload
        if not isinstance(payload, EventPayload):
            raise ValueError("payload must be an EventPayload")
        if self.event_type != payload.EVENT_TYPE:
            raise ValueError(f"event_type {self.event_type!r} != payload's {payload.EVENT_TYPE!r}")
        if self.schema_version != payload.SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} != {payload.SCHEMA_VERSION}")
        if (self.run_id is not None) != payload.RUN_SCOPED:
            need = "requires" if payload.RUN_SCOPED else "must not carry"
            raise ValueError(f"{self.event_type} {need} a run_id")
        return self

    @property
    def scoped_run_id(self) -> UUID:
        """The run of a run-scoped event (the validator guarantees it has one); InvalidEvent,
        a permanent error, for an event outside runs."""
        if self.run_id is None:
            raise InvalidEvent(f"{self.event_type} {self.event_id} carries no run_id")
        return self.run_id

    def key(self) -> bytes:
        """Kafka key: the run id, so a run's events stay in order; the producer outside runs."""
        return str(self.run_id if self.run_id is not None else self.producer).encode()

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers mirroring the envelope fields (absent ids are left out)."""
        fields = self.model_dump(mode="json", exclude={"payload"})
        return [(name, str(value).encode()) for name, value in fields.items() if value is not None]


def new_event(
    payload: EventPayload,
    *,
    producer: str,
    run_id: UUID | None,
    cause: Envelope[Any] | None = None,
    discriminator: str = "",
    correlation_id: UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope[Any]:
    """Wrap `payload` in a fresh envelope.

    With a `cause`, the event id is derived from the cause (plus `discriminator` when one cause
    yields several events of this type), so handling a redelivered input re-emits the same id.
    """
    if cause is not None:
        if correlation_id is not None:
            raise ValueError("correlation_id comes from the cause; do not pass both")
        event_id = derive_event_id(cause.event_id, payload.EVENT_TYPE, discriminator)
        correlation, causation = cause.correlation_id, cause.event_id
    else:
        event_id = uuid4()
        correlation, causation = correlation_id or event_id, None
    return Envelope[Any](
        event_id=event_id,
        event_type=payload.EVENT_TYPE,
        schema_version=payload.SCHEMA_VERSION,
        occurred_at=occurred_at or datetime.now(UTC),
        run_id=run_id,
        correlation_id=correlation,
        causation_id=causation,
        producer=producer,
        payload=payload,
    )


def encode(envelope: Envelope[Any]) -> bytes:
    """Compact JSON; the same envelope always gives the same bytes."""
    return envelope.model_dump_json().encode()


def stored(envelope: Envelope[Any]) -> str:
    """How a service keeps an event in its database (a cause to derive from later, an outbox's
    event to publish): the encoded envelope as text, so it comes back through `restored` exactly
    as it would from Kafka, upcasting included."""
    return encode(envelope).decode()


def restored(text: str) -> Envelope[Any]:
    """The event `stored` kept; InvalidEvent if the text is not one."""
    return decode(text.encode())


def decode(raw: bytes) -> Envelope[Any]:
    """Parse and validate an envelope, upcasting an older payload to the current version.

    Raises InvalidEvent for anything that is not a valid event of a known type and version.
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise InvalidEvent(f"not JSON: {exc}") from exc
    except RecursionError as exc:  # JSON nested deeper than the parser's stack
        raise InvalidEvent(f"JSON nested too deeply to parse ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidEvent("envelope is not a JSON object")
    event_type, version, body = (data.get(k) for k in ("event_type", "schema_version", "payload"))
    if not isinstance(event_type, str):
        raise InvalidEvent("event_type is missing")
    try:
        cls = payload_class(event_type)
    except KeyError:
        raise InvalidEvent(f"unknown event type {event_type!r}") from None
    if type(version) is not int or not 1 <= version <= cls.SCHEMA_VERSION:
        raise InvalidEvent(f"unsupported schema_version {version!r} for {event_type}")
    if not isinstance(body, dict):
        raise InvalidEvent("payload is not a JSON object")
    body = upcast(event_type, body, version, cls.SCHEMA_VERSION)
    try:
        payload = cls.model_validate(body)
        return Envelope[Any].model_validate(
            {**data, "schema_version": cls.SCHEMA_VERSION, "payload": payload}
        )
    except ValidationError as exc:
        raise InvalidEvent(f"invalid {event_type}: {exc}") from exc
