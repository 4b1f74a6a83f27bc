"""The clock of the emulated cluster: grants GPUs in FIFO order and moves deployments and jobs
through their timed transitions.

Transitions are computed from persisted timestamps, so a restarted emulator resumes where it
was. Requests call tick() before they read state, so with zero timings a transition is visible
at once; the background loop makes them happen while nobody is looking too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from flywheel_nmp_emulator.jobs import customization, deployments
from flywheel_nmp_emulator.jobs.evaluation import Evaluations
from flywheel_nmp_emulator.real import lifecycle as real_lifecycle
from flywheel_nmp_emulator.runtime import Emulator

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.evaluations = Evaluations(emu)
        self._loop_task: asyncio.Task[None] | None = None

    def tick(self) -> None:
        emu = self.emu
        now = emu.clock()
        granted = emu.gpus.grant()
        for holder in granted:
            log.info("GPUs granted to %s", holder)
        changed = bool(granted)
        changed |= deployments.advance(emu, now)
        changed |= customization.advance(emu, now)
        # A finished job frees GPUs: grant again so the next in line starts in the same tick.
        if emu.gpus.grant():
            changed = True
            deployments.advance(emu, now)
            customization.advance(emu, now)
        if emu.real is not None:
            changed |= real_lifecycle.reconcile(emu, now)
        changed |= self.evaluations.advance(now)
        if changed:
            emu.store.commit()

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # keep the cluster's clock running whatever one tick hit
                log.exception("scheduler tick failed")
            await asyncio.sleep(self.emu.settings.tick_seconds)

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self.evaluations.close()
        self.emu.fits.close()
