"""A service process for the SIGKILL test: `python crash_consumer.py TOPIC KILL_AT`.

Settings come from FLYWHEEL_* variables, as in a deployed service. KILL_AT picks where the
process kills itself with SIGKILL while handling its first event: `after_effect` (before the
event is marked processed), `after_mark` (before the offset commit), or `never`.
"""

import os
import signal
import sys
from typing import Any
from uuid import UUID

from fastapi import FastAPI

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import RunCancelled
from flywheel_contracts.runtime import ServiceKit, ServiceSettings, create_service_app, run_service
from flywheel_contracts.runtime.idempotency import ProcessedEvents

EFFECTS = "crash_effects"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DieAfterMark(ProcessedEvents):
    async def mark(self, event_id: UUID, event_type: str) -> None:
        await super().mark(event_id, event_type)
        _die()


def create_app(settings: ServiceSettings, topic: str, kill_at: str) -> FastAPI:
    kit = ServiceKit(settings)
    effects = kit.db[EFFECTS]
    if kill_at == "after_mark":
        kit.processed = DieAfterMark(kit.db, consumer=settings.service_name)

    async def handle(event: Envelope[RunCancelled]) -> None:
        # Idempotent like every real handler (one document per event); `runs` counts executions.
        await effects.update_one(
            {"_id": f"{settings.service_name}:{event.event_id}"},
            {"$inc": {"runs": 1}},
            upsert=True,
        )
        if kill_at == "after_effect":
            _die()

    kit.subscribe(RunCancelled, handle, topic=topic)
    return create_service_app(kit)


def main(argv: list[str]) -> None:
    topic, kill_at = argv

    def factory(settings: ServiceSettings) -> Any:
        return create_app(settings, topic, kill_at)

    run_service(factory, ServiceSettings())


if __name__ == "__main__":
    main(sys.argv[1:])
