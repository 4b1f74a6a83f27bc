"""The real LoRA trainer's environment, installed on first use into a venv of its own in the
cache (`.cache/venvs/lora-trainer-<digest>`): PyTorch, transformers, peft and what llama.cpp's
adapter converter needs, pinned and hash-checked by `lora-trainer-requirements.txt`.

Never in the uv workspace: PyPI's torch for Linux is the CUDA build, about 2.8 GB of wheels and
4.6 GB installed, which CI and the default tests must not download. The NMP emulator runs its
trainers with this venv's Python (NMP_EMULATOR_REAL__TRAINER_PYTHON).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flywheel_localstack.config import DEPLOY_LOCAL_DIR, StackSettings
from flywheel_localstack.installers import cached_venv
from flywheel_localstack.real_model.install import Reporter

REQUIREMENTS = DEPLOY_LOCAL_DIR / "lora-trainer-requirements.txt"
DOWNLOAD_BYTES = 2_790_000_000
"""What the first install downloads (measured on the network interface: torch 2.11 with its
CUDA libraries, triton, transformers, peft and their dependencies)."""
INSTALLED_BYTES = 4_600_000_000


def venv_name(requirements: Path = REQUIREMENTS) -> str:
    """Named after the pins (comments aside), so changed pins install a new venv beside the old."""
    pins = [
        line.strip()
        for line in requirements.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return f"lora-trainer-{hashlib.sha256(chr(10).join(pins).encode()).hexdigest()[:12]}"


def install_trainer(cache_dir: Path | None = None, report: Reporter = print) -> Path:
    """The trainer venv's Python, installed unless it is there (later calls take milliseconds)."""
    cache = cache_dir or StackSettings().cache_dir
    name = venv_name()
    if not (cache / "venvs" / name / ".installed").is_file():
        report(
            f"LoRA trainer, first use: downloading about {DOWNLOAD_BYTES / 1e9:.1f} GB (PyTorch's "
            f"CUDA build, the only one PyPI has, with transformers and peft), "
            f"{INSTALLED_BYTES / 1e9:.1f} GB on disk in {cache / 'venvs' / name}"
        )
    return cached_venv(name, ["-r", str(REQUIREMENTS)], cache_dir=cache)
