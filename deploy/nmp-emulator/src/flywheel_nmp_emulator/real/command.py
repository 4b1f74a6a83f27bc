"""The llama-server command line for one deployment (pure: what a deployment's settings and
adapters make of it, testable without a binary)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from flywheel_nmp_emulator.config import RealBackend


def llama_command(
    settings: RealBackend, *, port: int, key_file: Path, adapters: Sequence[Path] = ()
) -> list[str]:
    """The server for `settings.model_id` on 127.0.0.1:`port`, wanting the key in `key_file`
    (a file, so the key never shows on a command line), with `adapters` loaded unapplied."""
    assert settings.llama_server is not None and settings.model_path is not None  # validated
    threads = settings.threads or len(os.sched_getaffinity(0))
    cmd = [
        str(settings.llama_server),
        "--model",
        str(settings.model_path),
        "--alias",
        settings.model_id,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # The model's own chat template, which renders `tools` and parses tool calls back.
        "--jinja",
        "--parallel",
        str(settings.parallel),
        "--ctx-size",
        str(settings.parallel * settings.ctx_per_slot),
        # Each slot its own context: one long ICL prompt cannot starve the other slot.
        "--no-kv-unified",
        "--threads",
        str(threads),
        "--n-predict",
        str(settings.max_tokens),
        "--cache-ram",
        str(settings.cache_ram_mib),
        "--no-ui",
        "--api-key-file",
        str(key_file),
    ]
    if adapters:
        # Loaded at scale 0: a request applies its model's adapter by index (`lora` in its body),
        # so the base and every customized model share one process, as LoRA NIMs do.
        cmd.append("--lora-init-without-apply")
        for adapter in adapters:
            cmd += ["--lora", str(adapter)]
    return cmd
