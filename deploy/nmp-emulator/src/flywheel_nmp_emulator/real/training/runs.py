"""The training and conversion processes of the jobs that train for real, one job at a time each.

They are started like the servers (real/process.py), from the event loop's thread, and so die
with the emulator: the kernel's parent-death signal, and a pid file in the run folder that the
next emulator's sweep reads. Each leads its own process group, so stopping a job stops whatever
its trainer started too (PyTorch's workers, a converter's children).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from flywheel_nmp_emulator.config import RealBackend
from flywheel_nmp_emulator.real.process import ServerProcess
from flywheel_nmp_emulator.real.training.chat_format import TrainingExample
from flywheel_nmp_emulator.real.training.command import (
    JobFiles,
    convert_command,
    trainer_command,
    trainer_config,
)
from flywheel_nmp_emulator.real.training.plan import TrainingPlan
from flywheel_nmp_emulator.real.training.progress import ProgressReader

log = logging.getLogger(__name__)

Phase = Literal["training", "converting"]
Command = Callable[[RealBackend, JobFiles], list[str]]


@dataclass
class TrainingRun:
    job_id: str
    files: JobFiles
    process: ServerProcess
    phase: Phase = "training"
    reader: ProgressReader = field(init=False)

    def __post_init__(self) -> None:
        self.reader = ProgressReader(self.files.progress)


class TrainingRuns:
    def __init__(self, settings: RealBackend, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self._runs: dict[str, TrainingRun] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def get(self, job_id: str) -> TrainingRun | None:
        return self._runs.get(job_id)

    def job_ids(self) -> list[str]:
        return list(self._runs)

    def files(self, job_id: str) -> JobFiles:
        return JobFiles(self.run_dir / "training" / job_id)

    def start(
        self, job_id: str, examples: Iterable[TrainingExample], plan: TrainingPlan, seed: int
    ) -> TrainingRun:
        """Write the job's examples and config and spawn its trainer."""
        self.stop(job_id)
        files = self.files(job_id)
        files.folder.mkdir(parents=True, exist_ok=True)
        files.progress.unlink(missing_ok=True)
        files.examples.write_text(
            "".join(json.dumps(example.to_json()) + "\n" for example in examples)
        )
        files.config.write_text(json.dumps(trainer_config(self.settings, plan, files, seed)))
        run = TrainingRun(job_id, files, self._spawn(job_id, "train", trainer_command))
        self._runs[job_id] = run
        log.info("trainer %s for customization %s (%s)", run.process.pid, job_id, plan.describe())
        return run

    def convert(self, job_id: str) -> TrainingRun:
        """Spawn the converter of a job whose trainer saved its adapter."""
        run = self._runs[job_id]
        run.process = self._spawn(job_id, "convert", convert_command)
        run.phase = "converting"
        return run

    def _spawn(self, job_id: str, role: str, command: Command) -> ServerProcess:
        files = self.files(job_id)
        process = ServerProcess(
            command(self.settings, files),
            files.train_log if role == "train" else files.convert_log,
            self.run_dir / f"{role}-{job_id}.pid",
            niceness=self.settings.train_niceness,
        )
        process.start()
        return process

    def forget(self, job_id: str) -> None:
        """Drop a finished job's run (its processes have exited)."""
        self._runs.pop(job_id, None)

    def stop(self, job_id: str) -> None:
        """Stop the job's process group in the background: SIGTERM, SIGKILL after the grace."""
        run = self._runs.pop(job_id, None)
        if run is None:
            return
        task = asyncio.get_running_loop().create_task(
            run.process.stop(self.settings.stop_timeout_s)
        )
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {
            job_id: {
                "pid": run.process.pid,
                "phase": run.phase,
                "steps": len(run.reader.progress.steps),
                "log": str(run.process.log_path),
            }
            for job_id, run in self._runs.items()
        }

    async def close(self) -> None:
        """Stop every job's processes and wait until they have exited (emulator shutdown)."""
        for job_id in list(self._runs):
            self.stop(job_id)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
