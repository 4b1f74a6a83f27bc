"""The FastAPI application: every NMP host's routes on one port, plus health and admin."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from flywheel_nmp_emulator.api import (
    admin,
    customizer,
    datastore,
    deployments,
    entity_store,
    evaluator,
    health,
    nim,
)
from flywheel_nmp_emulator.api.auth import PlatformKeyMiddleware
from flywheel_nmp_emulator.config import Settings
from flywheel_nmp_emulator.faults import FaultMiddleware
from flywheel_nmp_emulator.journal import JournalMiddleware, RequestJournal
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.scheduler import Scheduler

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, emulator: Emulator | None = None) -> FastAPI:
    emu = emulator or Emulator(settings or Settings())
    scheduler = Scheduler(emu)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if emu.real is not None:
            # Before the first tick starts servers: what a SIGKILLed predecessor left must go.
            # Trainers and converters too: their pid files are in the same run folder.
            for pid in emu.real.sweep():
                log.warning("stopped process %d left by a previous emulator", pid)
        scheduler.start()
        log.info(
            "NMP emulator up: %d GPU(s), namespace %s, state %s",
            emu.settings.gpus,
            emu.settings.namespace,
            emu.settings.state_file or "in memory",
        )
        try:
            yield
        finally:
            await scheduler.stop()
            if emu.training is not None:
                # Before the servers: their close may remove the run folder the jobs use.
                await emu.training.close()
            if emu.real is not None:
                await emu.real.close()
            emu.store.commit()

    app = FastAPI(
        title="NMP emulator",
        description="NeMo Microservices Platform stand-in with a GPU inventory and CPU models",
        lifespan=lifespan,
    )
    app.state.emulator = emu
    app.state.scheduler = scheduler
    # The NIM proxy first: routes are matched in order, and chat is the hot path.
    for module in (nim, health, entity_store, datastore, deployments, customizer, evaluator, admin):
        app.include_router(module.router)
    app.add_middleware(FaultMiddleware, injector=emu.faults)
    if emu.settings.record_requests:
        app.state.journal = RequestJournal()
        app.add_middleware(JournalMiddleware, journal=app.state.journal)
    if emu.settings.api_key is not None:
        # Outermost: a request without the key is refused before faults or the journal see it,
        # as a gateway in front of NMP would refuse it.
        app.add_middleware(PlatformKeyMiddleware, key=emu.settings.api_key)
    return app
