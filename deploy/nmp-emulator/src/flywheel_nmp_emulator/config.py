"""Emulator settings, read from the environment with the prefix ``NMP_EMULATOR_``.

Timings and faults can also be changed at runtime through the admin API (``/emulator/...``);
the values here are only the starting point.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Timings(BaseModel):
    """How long the emulated cluster takes. Zero everywhere makes every transition immediate."""

    deploy_seconds: float = Field(default=0.0, ge=0)
    training_seconds_per_epoch: float = Field(default=0.0, ge=0)
    token_latency_ms: float = Field(default=0.0, ge=0)
    model_sync_seconds: float = Field(default=0.0, ge=0)
    eval_seconds_per_record: float = Field(default=0.0, ge=0)


class EndpointFault(BaseModel):
    """Faults for every request whose path starts with a given prefix."""

    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=500, ge=400, le=599)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    # A timeout sleeps this long before answering 504; set it past the client's timeout.
    timeout_seconds: float = Field(default=30.0, ge=0)
    # A late answer takes effect at once and is sent only after late_answer_seconds: the window
    # in which a client that dies has changed NMP without learning what it changed.
    late_answer_rate: float = Field(default=0.0, ge=0, le=1)
    late_answer_seconds: float = Field(default=30.0, ge=0)
    methods: list[str] = Field(default_factory=list, description="empty = every method")


class Faults(BaseModel):
    """Failure injection. Every random decision is drawn from ``seed``, so a run is repeatable."""

    seed: int = 0
    endpoints: dict[str, EndpointFault] = Field(
        default_factory=dict, description="path prefix -> fault, the longest prefix wins"
    )
    # Substrings of a model name: a matching deployment / customization / evaluation target fails.
    fail_deployments: list[str] = Field(default_factory=list)
    fail_customizations: list[str] = Field(default_factory=list)
    fail_evaluations: list[str] = Field(default_factory=list)


class RealBackend(BaseModel):
    """A real model behind the NIM proxy: deployments of `model_id` start a llama-server process
    (real/). Off by default, so tests and CI keep the heuristic models; the local stack fills the
    paths when it starts the emulator in real mode."""

    enabled: bool = False
    # The deployment model id that is served for real (also the server's --alias).
    model_id: str = Field(default="qwen/qwen2.5-coder-0.5b-instruct", min_length=1)
    llama_server: Path | None = Field(default=None, description="the llama-server binary")
    model_path: Path | None = Field(default=None, description="the GGUF file it serves")
    # None = every core this process may run on.
    threads: int | None = Field(default=None, ge=1)
    parallel: int = Field(default=2, ge=1, description="slots: requests decoded together")
    ctx_per_slot: int = Field(default=8192, ge=512, description="context tokens of each slot")
    max_tokens: int = Field(default=1024, ge=1, description="cap on generated tokens per request")
    # llama.cpp enforces `tool_choice: "required"` with a grammar that lets an answer end only
    # after a `<tool_call>` tag, which the base model never writes (it answers bare JSON), so its
    # answers run to their token cap, each token paying a grammar pass over the vocabulary (under
    # 1 token/s on two busy cores). As "auto" the answer ends where the model ends it, and a call
    # the model writes in tags is still parsed into `tool_calls` (by a grammar the tag triggers).
    tool_choice_required_as_auto: bool = True
    # Prompts of idle slots kept for reuse; llama.cpp's default (8 GiB) grows a small server's
    # memory more than twofold over one ICL evaluation.
    cache_ram_mib: int = Field(default=512, ge=0)
    ready_timeout_s: float = Field(default=180.0, gt=0, description="load time before failing")
    stop_timeout_s: float = Field(default=10.0, gt=0, description="SIGTERM grace before SIGKILL")
    # Logs, pid files and key files of the servers. None = "<state stem>.llama" beside the state
    # file, or a fresh temporary folder when state lives in memory.
    run_dir: Path | None = None

    # Real LoRA training (real/training/): customization jobs of `model_id` train in a subprocess
    # run by this Python, a venv with PyTorch, transformers, peft and gguf (the local stack
    # installs it into its cache). None = those jobs keep the heuristic trainer.
    trainer_python: Path | None = Field(default=None, description="the trainer venv's python")
    # llama.cpp's source tree, for its convert_lora_to_gguf.py (run by `trainer_python`).
    llama_cpp_source: Path | None = None
    # The laptop profile: a step of this model takes seconds per sequence on a CPU, so a job
    # trains at most this many steps of at most this many sequences (real/training/plan.py).
    max_train_steps: int = Field(default=60, ge=1)
    max_train_batch_size: int = Field(default=1, ge=1)
    # Longer examples (prompt, tools and answer) are left out of training.
    max_seq_length: int = Field(default=4096, ge=64)
    # None = every core this process may run on.
    train_threads: int | None = Field(default=None, ge=1)
    # Training is a background job: the servers answering requests keep the CPU first.
    train_niceness: int = Field(default=10, ge=0, le=19)
    # bf16 matmuls in training; None = when the CPU has them natively (AVX512-BF16 or AMX).
    train_bf16: bool | None = None
    # Recompute activations in the backward pass: a third more time a step, a fraction of the
    # peak memory (a laptop shares its RAM with everything else).
    train_gradient_checkpointing: bool = True

    @model_validator(mode="after")
    def _paths_when_enabled(self) -> Self:
        # Checked here, at start-up, so a wrong path is an error before any deployment asks.
        if not self.enabled:
            return self
        if self.llama_server is None or self.model_path is None:
            raise ValueError("real.enabled needs real.llama_server and real.model_path")
        if not (self.llama_server.is_file() and os.access(self.llama_server, os.X_OK)):
            raise ValueError(f"real.llama_server {self.llama_server} is not an executable file")
        if not self.model_path.is_file():
            raise ValueError(f"real.model_path {self.model_path} is not a file")
        if self.trainer_python is not None:
            if not os.access(self.trainer_python, os.X_OK):
                raise ValueError(f"real.trainer_python {self.trainer_python} is not executable")
            if self.llama_cpp_source is None or not self.convert_script().is_file():
                raise ValueError(
                    "real.trainer_python needs real.llama_cpp_source, a llama.cpp source tree "
                    "with convert_lora_to_gguf.py"
                )
        return self

    def convert_script(self) -> Path:
        assert self.llama_cpp_source is not None
        return self.llama_cpp_source / "convert_lora_to_gguf.py"

    @property
    def trains(self) -> bool:
        """Whether customization jobs of `model_id` train for real."""
        return self.enabled and self.trainer_python is not None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NMP_EMULATOR_", env_nested_delimiter="__")

    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)
    log_level: str = "warning"
    # Where state lives; uploaded files go to a "<stem>.data" folder beside it. None = memory only.
    state_file: Path | None = None
    namespace: str = "dfwbp"
    gpus: int = Field(default=4, ge=0)
    seed: int = 0
    # How long a stop (SIGTERM) waits for requests in flight before cancelling them.
    shutdown_grace_s: int = Field(default=5, ge=1)
    # How often the scheduler looks for due transitions (requests also advance it on read).
    tick_seconds: float = Field(default=0.05, gt=0)

    judge_model: str = "meta/llama-3.3-70b-instruct"
    embedding_model: str = "nvidia/llama-3.2-nv-embedqa-1b-v2"
    embedding_dim: int = Field(default=2048, ge=8)
    # Served by the NIM proxy without a deployment, as a hosted judge / embedding endpoint would
    # be. None = the judge and the embedding model; [] = only what is deployed.
    always_served_models: list[str] | None = None
    # When set, the always-served (hosted) models' chat completions and /v1/embeddings want
    # `Authorization: Bearer <key>` (401 otherwise), as a hosted endpoint would; deployed models
    # stay keyless. Never logged.
    hosted_api_key: SecretStr | None = None
    # When set, every platform route and the NIM proxy want `Authorization: Bearer <key>`
    # (401 otherwise), as NMP behind an authenticating gateway would; /health/*, /emulator/*
    # and the Data Store stay open, and hosted models want `hosted_api_key` when that is set
    # (api/auth.py). Never logged.
    api_key: SecretStr | None = None

    # Keep the JSON bodies clients send (GET /emulator/requests), for request-shape tests.
    record_requests: bool = False

    timings: Timings = Field(default_factory=Timings)
    faults: Faults = Field(default_factory=Faults)
    real: RealBackend = Field(default_factory=RealBackend)

    # Flat aliases for the timings, so NMP_EMULATOR_DEPLOY_SECONDS=5 works as documented.
    deploy_seconds: float | None = Field(default=None, ge=0)
    training_seconds_per_epoch: float | None = Field(default=None, ge=0)
    token_latency_ms: float | None = Field(default=None, ge=0)
    model_sync_seconds: float | None = Field(default=None, ge=0)
    eval_seconds_per_record: float | None = Field(default=None, ge=0)

    def effective_timings(self) -> Timings:
        """The nested timings with every flat alias that was set applied on top."""
        overrides = {
            name: value
            for name in Timings.model_fields
            if (value := getattr(self, name)) is not None
        }
        return self.timings.model_copy(update=overrides)

    def served_without_deployment(self) -> list[str]:
        if self.always_served_models is None:
            return [self.judge_model, self.embedding_model]
        return self.always_served_models

    @model_validator(mode="after")
    def _real_model_is_deployable(self) -> Self:
        # An always-served id never gets a deployment, so it could never start a real server.
        if self.real.enabled and self.real.model_id in self.served_without_deployment():
            raise ValueError(
                f"real.model_id {self.real.model_id} is served without a deployment "
                "(judge / embedding / always_served_models): it would never start a server"
            )
        return self

    def real_run_dir(self) -> Path | None:
        """Where the real servers' logs and pid files go; None = a temporary folder."""
        if self.real.run_dir is not None:
            return self.real.run_dir
        if self.state_file is None:
            return None
        return self.state_file.with_name(self.state_file.stem + ".llama")

    def data_dir(self) -> Path | None:
        if self.state_file is None:
            return None
        return self.state_file.with_name(self.state_file.stem + ".data")
