"""The trainer's and the converter's command lines and the trainer's config file (pure)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel_nmp_emulator.config import RealBackend
from flywheel_nmp_emulator.real.training.plan import TrainingPlan

TRAINER_SCRIPT = Path(__file__).with_name("train_lora.py")


@dataclass(frozen=True)
class JobFiles:
    """Where one job's training lives (its folder under the run folder)."""

    folder: Path

    @property
    def examples(self) -> Path:
        return self.folder / "examples.jsonl"

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    @property
    def progress(self) -> Path:
        return self.folder / "progress.jsonl"

    @property
    def adapter(self) -> Path:
        return self.folder / "adapter"

    @property
    def base_config(self) -> Path:
        return self.folder / "base"

    @property
    def gguf(self) -> Path:
        return self.folder / "adapter.gguf"

    @property
    def train_log(self) -> Path:
        return self.folder / "train.log"

    @property
    def convert_log(self) -> Path:
        return self.folder / "convert.log"


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU multiplies bf16 natively (without, autocast to bf16 is slower than fp32)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def trainer_config(
    settings: RealBackend, plan: TrainingPlan, files: JobFiles, seed: int
) -> dict[str, Any]:
    """What train_lora.py reads: the plan, the model, the files, the threads."""
    assert settings.model_path is not None  # validated when enabled
    return {
        "model_gguf": str(settings.model_path),
        "examples": str(files.examples),
        "output_dir": str(files.folder),
        "progress": str(files.progress),
        "total_steps": plan.total_steps,
        "batch_size": plan.batch_size,
        "learning_rate": plan.learning_rate,
        "lora_rank": plan.lora_rank,
        "lora_alpha": plan.lora_alpha,
        "lora_dropout": plan.lora_dropout,
        "max_seq_length": settings.max_seq_length,
        "threads": settings.train_threads or len(os.sched_getaffinity(0)),
        "seed": seed,
        "bf16": cpu_has_bf16() if settings.train_bf16 is None else settings.train_bf16,
        "gradient_checkpointing": settings.train_gradient_checkpointing,
    }


def trainer_command(settings: RealBackend, files: JobFiles) -> list[str]:
    assert settings.trainer_python is not None  # only called when training is on
    # -u: tracebacks reach the log even when the process is killed right after.
    return [str(settings.trainer_python), "-u", str(TRAINER_SCRIPT), str(files.config)]


def convert_command(settings: RealBackend, files: JobFiles) -> list[str]:
    """llama.cpp's converter, run with the trainer's Python (it needs torch, transformers and
    gguf); f16 halves the adapter against f32 and is what llama-server applies anyway."""
    assert settings.trainer_python is not None
    return [
        str(settings.trainer_python),
        str(settings.convert_script()),
        "--base",
        str(files.base_config),
        "--outfile",
        str(files.gguf),
        "--outtype",
        "f16",
        str(files.adapter),
    ]
