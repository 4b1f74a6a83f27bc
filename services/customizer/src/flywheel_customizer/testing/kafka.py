"""Reading the customizer's events and publishing its inputs, on a sandbox's prefixed topics."""

import asyncio
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self
from uuid import UUID, uuid4

from confluent_kafka import Consumer

from flywheel_contracts.envelope import Envelope, decode

CUSTOMIZATION_EVENTS = ("customization.started", "customization.progress", "customization.done")


class EventReader:
    """Decoded envelopes of `topics`, from their beginning, as they arrive. Polls in a thread so
    a customizer running on the same event loop keeps going."""

    def __init__(self, bootstrap: str, topics: Iterable[str]) -> None:
        self.events: list[Envelope[Any]] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"flywheel.test-reader.{uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe(list(topics))

    def of_run(self, run_id: UUID | None, event_type: str | None = None) -> list[Envelope[Any]]:
        return [
            e
            for e in self.events
            if e.run_id == run_id and (event_type is None or e.event_type == event_type)
        ]

    async def wait_for(
        self, condition: Callable[[], bool], timeout_s: float = 60.0
    ) -> list[Envelope[Any]]:
        """Read until `condition()` holds; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                seen = [(e.event_type, str(e.run_id)) for e in self.events]
                raise AssertionError(f"condition not met within {timeout_s}s; read {seen}")
            message = await asyncio.to_thread(self._consumer.poll, 0.2)
            if message is not None and message.error() is None:
                self.events.append(decode(message.value() or b""))
        return self.events

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
