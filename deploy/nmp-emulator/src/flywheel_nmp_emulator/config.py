"""Emulator settings, read from the environment with the prefix ``NMP_EMULATOR_``.

Timings and faults can also be changed at runtime through the admin API (``/emulator/...``);
the values here are only the starting point.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
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

    def data_dir(self) -> Path | None:
        if self.state_file is None:
            return None
        return self.state_file.with_name(self.state_file.stem + ".data")
