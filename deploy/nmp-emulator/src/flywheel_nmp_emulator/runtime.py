"""The emulator's moving parts, wired once and shared by the routers and the scheduler."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from flywheel_nmp_emulator.config import Settings, Timings
from flywheel_nmp_emulator.faults import FaultInjector
from flywheel_nmp_emulator.gpu import GpuInventory
from flywheel_nmp_emulator.jobs.fitting import AdapterFits
from flywheel_nmp_emulator.models.instruct import ModelKit
from flywheel_nmp_emulator.real.servers import RealServers
from flywheel_nmp_emulator.real.training.runs import TrainingRuns
from flywheel_nmp_emulator.serving import ModelCatalog
from flywheel_nmp_emulator.state.records import EmulatorState
from flywheel_nmp_emulator.state.store import StateStore


class Emulator:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.timings: Timings = settings.effective_timings()
        self.store = StateStore(settings.state_file, settings.data_dir(), clock)
        self.faults = FaultInjector(settings.faults)
        self.kit = ModelKit()
        self.catalog = ModelCatalog(self)
        # Chat completions answered per model id since the process started (/emulator/usage).
        self.chat_completions: Counter[str] = Counter()
        # Stand-in adapters being fitted, off the event loop.
        self.fits = AdapterFits()
        # Real llama-server processes for the real model's deployments; None = heuristic only.
        self.real: RealServers | None = (
            RealServers(settings.real, settings.real_run_dir()) if settings.real.enabled else None
        )
        # Real LoRA trainers for the real model's customization jobs; None = heuristic training.
        self.training: TrainingRuns | None = (
            TrainingRuns(settings.real, self.real.run_dir)
            if self.real is not None and settings.real.trains
            else None
        )

    @property
    def state(self) -> EmulatorState:
        return self.store.state

    @property
    def gpus(self) -> GpuInventory:
        # Built on demand over the persisted ledger, so a reset or a restore can never leave a
        # stale inventory behind.
        return GpuInventory(self.settings.gpus, self.store.state.gpu)
