"""The seam between a real trainer and real serving: which customized model has a real LoRA
adapter, and where its GGUF file is.

The mapping lives on the customized model's record (`CustomizedModel.lora_gguf`), so it is
persisted with the state, survives restarts and goes when the model is deleted. A trainer calls
`register_adapter` once the adapter is converted; the next scheduler tick restarts the base
model's server with it (lifecycle.py) and the proxy routes the model id to that server.
"""

from __future__ import annotations

from pathlib import Path

from flywheel_nmp_emulator.state.records import EmulatorState


class AdapterError(ValueError):
    """The adapter cannot be registered (unknown model, missing file)."""


def register_adapter(state: EmulatorState, model_id: str, gguf: Path) -> None:
    """Make `model_id` (a customized model) servable for real with the adapter `gguf`. The
    caller commits the state."""
    model = state.models.get(model_id)
    if model is None:
        raise AdapterError(f"no customized model {model_id}")
    if not gguf.is_file():
        raise AdapterError(f"adapter {gguf} is not a file")
    model.lora_gguf = str(gguf.resolve())


def adapters_for(state: EmulatorState, base_model: str) -> tuple[tuple[str, Path], ...]:
    """(customized model id, adapter file) of every real adapter on `base_model`, in a fixed
    order (by id): a server's `--lora` order, so the index of each adapter is stable."""
    return tuple(
        (model_id, Path(model.lora_gguf))
        for model_id, model in sorted(state.models.items())
        if model.base_model == base_model and model.lora_gguf is not None
    )
