"""The NMP emulator's real backend wired to the installed model: the `NMP_EMULATOR_REAL__*`
settings that make deployments of the real model id start llama-server processes and, with a
trainer, customization jobs of it train real LoRA adapters.

The emulator does not depend on this package (it is deployed on its own and takes paths from its
settings); the local stack is what knows where the cache put the binary, the model, llama.cpp's
source and the trainer's venv.
"""

from __future__ import annotations

from pathlib import Path

from flywheel_localstack.real_model.install import RealModel


def emulator_env(
    model: RealModel, trainer_python: Path | None = None, max_train_steps: int | None = None
) -> dict[str, str]:
    env = {
        "NMP_EMULATOR_REAL__ENABLED": "true",
        "NMP_EMULATOR_REAL__MODEL_ID": model.served_model,
        "NMP_EMULATOR_REAL__LLAMA_SERVER": str(model.server),
        "NMP_EMULATOR_REAL__MODEL_PATH": str(model.model),
    }
    if trainer_python is not None:
        if model.llama_cpp_source is None:
            raise ValueError("real training needs llama.cpp's source (its adapter converter)")
        env["NMP_EMULATOR_REAL__TRAINER_PYTHON"] = str(trainer_python)
        env["NMP_EMULATOR_REAL__LLAMA_CPP_SOURCE"] = str(model.llama_cpp_source)
        if max_train_steps is not None:
            env["NMP_EMULATOR_REAL__MAX_TRAIN_STEPS"] = str(max_train_steps)
    return env
