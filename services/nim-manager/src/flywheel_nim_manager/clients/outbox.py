"""The Outbox port on the kit's publisher."""

from typing import Any
from uuid import UUID

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime import ServiceKit


class KitOutbox:
    def __init__(self, kit: ServiceKit) -> None:
        self._kit = kit

    async def emit(
        self,
        payload: EventPayload,
        *,
        run_id: UUID,
        cause: Envelope[Any],
        discriminator: str = "",
    ) -> None:
        event = self._kit.new_event(
            payload, run_id=run_id, cause=cause, discriminator=discriminator
        )
        await self._kit.publisher.publish(event)
