"""How a service produces events, as the ports its logic takes (the kit implements them):

- `Emit` (`ServiceKit.emit`): build an envelope of this service and publish it, returning once
  Kafka acknowledged it. An event caused by another gets an id derived from its cause, so
  handling a redelivered input emits the same id again, and the cause's run unless told otherwise.
- `NewEvent` (`ServiceKit.new_event`): only build it, for an outbox that stores the encoded
  envelope before publishing it...
- `Publish` (`Publisher.publish`): ...and later publishes what it stored.
"""

from enum import Enum
from typing import Any, Final, Literal, Protocol
from uuid import UUID

from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.payload import EventPayload


class _FromCause(Enum):
    FROM_CAUSE = "from the cause"


FROM_CAUSE: Final = _FromCause.FROM_CAUSE
"""The default `run_id`: the cause's run (None without a cause)."""

RunId = UUID | None | Literal[_FromCause.FROM_CAUSE]


def event_of(
    producer: str,
    payload: EventPayload,
    *,
    cause: Envelope[Any] | None = None,
    run_id: RunId = FROM_CAUSE,
    discriminator: str = "",
) -> Envelope[Any]:
    """`payload` as an event of `producer`: what `NewEvent` builds, for the kit and for its test
    doubles alike."""
    if run_id is FROM_CAUSE:
        run_id = cause.run_id if cause is not None else None
    return new_event(
        payload, producer=producer, run_id=run_id, cause=cause, discriminator=discriminator
    )


class NewEvent(Protocol):
    def __call__(
        self,
        payload: EventPayload,
        *,
        cause: Envelope[Any] | None = None,
        run_id: RunId = FROM_CAUSE,
        discriminator: str = "",
    ) -> Envelope[Any]:
        """`discriminator` tells apart several events of one type from one cause."""
        ...


class Emit(Protocol):
    async def __call__(
        self,
        payload: EventPayload,
        *,
        cause: Envelope[Any] | None = None,
        run_id: RunId = FROM_CAUSE,
        discriminator: str = "",
    ) -> Envelope[Any]: ...


class Publish(Protocol):
    async def __call__(self, envelope: Envelope[Any], /) -> None: ...
