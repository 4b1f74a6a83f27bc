"""The `Events` port on the kit's Kafka publisher."""

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import NimUp
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime import ServiceKit


class KitEvents:
    def __init__(self, kit: ServiceKit) -> None:
        self._kit = kit

    async def publish(
        self, payload: EventPayload, *, cause: Envelope[NimUp], discriminator: str = ""
    ) -> None:
        event = self._kit.new_event(
            payload, run_id=cause.run_id, cause=cause, discriminator=discriminator
        )
        await self._kit.publisher.publish(event)
