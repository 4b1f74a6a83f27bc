"""Evaluator settings: `FLYWHEEL_EVALUATOR_*`, nested groups with `__`
(e.g. ``FLYWHEEL_EVALUATOR_BACKEND=nmp``, ``FLYWHEEL_EVALUATOR_CHAT__CONCURRENCY=32``,
``FLYWHEEL_EVALUATOR_NMP__NEMO_BASE_URL=http://127.0.0.1:8700``)."""

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from flywheel_contracts.runtime import ServiceSettings
from flywheel_contracts.runtime.nmp import NmpSettings
from flywheel_contracts.runtime.secrets import secret


class BackendKind(StrEnum):
    NATIVE = "native"
    """The evaluator calls the candidate's OpenAI-compatible endpoint and scores itself."""
    NMP = "nmp"
    """NeMo Evaluator jobs (nmp-contract.md 4.4) score the candidate."""


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChatSettings(_Group):
    """How the candidate and the judge are called (native backend, and the nmp backend's
    latency sample)."""

    concurrency: int = Field(16, ge=1, le=512, description="Records in flight per evaluation.")
    request_timeout_s: float = Field(60.0, gt=0, description="One attempt's deadline.")
    connect_timeout_s: float = Field(5.0, gt=0)
    attempts: int = Field(3, ge=1, le=10, description="Attempts per request on transient errors.")
    backoff_s: float = Field(0.2, ge=0, description="Delay before the second attempt, doubled.")
    backoff_max_s: float = Field(5.0, ge=0)
    max_failure_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="An evaluation with more failed requests than this share of its records "
        "stops early and fails: its scores would describe too few records.",
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Sent as max_tokens to the candidate when set."
    )
    retry_after_max_s: float = Field(
        60.0,
        gt=0,
        description="Longest single wait on a 429, whatever its Retry-After asks: the server may "
        "be ready sooner than it says.",
    )
    rate_limited_max_s: float = Field(
        300.0,
        gt=0,
        description="A request still answered 429 after this long (or told to wait past it) "
        "ends the evaluation with `rate_limited`: scores over the records a rate limit let "
        "through would describe the limit, not the model.",
    )
    unreachable_max_s: float = Field(
        600.0,
        gt=0,
        description="An endpoint that accepts no connection (the NIM proxy during a platform "
        "restart) is waited for this long per request, its waits using up no attempt; then the "
        "evaluation ends `job_failed`, saying so, instead of failing record after record.",
    )


class JudgeSettings(_Group):
    """The LLM judge for correctness and similarity: a local NIM or a remote OpenAI-compatible
    endpoint (e.g. build.nvidia.com) reached with an API key."""

    model: str = Field(
        "meta/llama-3.3-70b-instruct",
        min_length=1,
        description="Used when the run's evaluation.judge_model is unset.",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL; default the NIM proxy (`nmp.nim_base_url`)."
    )
    api_key: SecretStr | None = Field(
        None,
        description="Sent as `Authorization: Bearer` to the judge's base URL only, never to a "
        "candidate; the nmp backend names it in the job's judge `api_endpoint`. None: no key.",
    )
    api_key_file: Path | None = Field(
        None,
        description="A file holding the judge's key (a mounted secret), read at each evaluation's "
        "start; instead of `api_key`.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra, non-secret headers for the judge's endpoint (a provider's own).",
    )
    ca_bundle: Path | None = Field(
        None, description="PEM file of the CAs trusted for the judge's HTTPS; default the system's."
    )
    decide_exact_cases: bool = Field(
        True,
        description="Apply the rubric's exact rules without asking the judge: no call or a "
        "different function name rates 0, identical calls rate 1, an answer identical to the "
        "reference rates 10. The judge rates only what needs judgement.",
    )


class EndpointKey(_Group):
    """A key the evaluator holds for one external endpoint, named by runs (`endpoint.api_key`)
    but never carried by them: events travel through Kafka, keys stay in this environment."""

    base_url: str = Field(
        pattern=r"^https?://\S+$",
        description="The only base URL the key is sent to: a run naming the key for another URL "
        "fails instead of handing the key to that host.",
    )
    key: SecretStr | None = Field(None, description="The key itself.")
    key_file: Path | None = Field(
        None,
        description="A file holding the key (a mounted secret), read each time an evaluation "
        "starts, so a rotated secret is picked up; its trailing newline is dropped.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.key is None) == (self.key_file is None):
            raise ValueError("set exactly one of KEY and KEY_FILE")
        return self


class NmpBackendSettings(_Group):
    """NeMo Evaluator jobs (the `nmp` backend)."""

    poll_interval_s: float = Field(2.0, gt=0)
    usage_sample: int = Field(
        20,
        ge=1,
        description="Records sent straight to the candidate to measure latency and tokens, "
        "which NMP's results do not report.",
    )
    delete_finished_jobs: bool = Field(
        True, description="Delete the NMP job once its results are stored here."
    )


class WorkerSettings(_Group):
    """How evaluations are claimed and driven (one claim at a time per instance and job)."""

    max_concurrent: int = Field(4, ge=1, le=64, description="Evaluations run at once.")
    poll_interval_s: float = Field(
        1.0, gt=0, description="How often new or orphaned jobs are looked for."
    )
    lease_s: float = Field(
        30.0, gt=0, description="A job whose owner stops renewing is taken over after this."
    )
    max_attempts: int = Field(
        5, ge=1, description="Claims of one job before it fails with an internal error."
    )
    progress_step_percent: int = Field(10, ge=1, le=50, description="eval.progress granularity.")
    records_batch: int = Field(100, ge=1, description="Record details written per Mongo batch.")


class EvaluatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_EVALUATOR_")

    service_name: str = "evaluator"
    http_port: int = Field(8104, ge=0, le=65535)
    backend: BackendKind = BackendKind.NATIVE
    eval_file: str = Field(
        "eval_data.jsonl", min_length=1, description="File of the eval and ICL datasets."
    )
    nmp: NmpSettings = NmpSettings()
    chat: ChatSettings = ChatSettings()
    judge: JudgeSettings = JudgeSettings()
    nmp_backend: NmpBackendSettings = NmpBackendSettings()
    worker: WorkerSettings = WorkerSettings()
    endpoint_keys: dict[str, EndpointKey] = Field(
        default_factory=dict,
        description="Keys of external endpoints by name (`FLYWHEEL_EVALUATOR_ENDPOINT_KEYS__"
        "<NAME>__KEY` or `__KEY_FILE`, with `__BASE_URL`); names match case-insensitively.",
    )

    @model_validator(mode="after")
    def _one_judge_key(self) -> Self:
        if self.judge.api_key is not None and self.judge.api_key_file is not None:
            raise ValueError("set at most one of JUDGE__API_KEY and JUDGE__API_KEY_FILE")
        return self

    def judge_key(self) -> SecretStr | None:
        """The judge's key, from the environment or its file (read now: rotation applies)."""
        return secret(self.judge.api_key, self.judge.api_key_file)

    @property
    def judge_base_url(self) -> str:
        return self.judge.base_url or f"{self.nmp.nim_base_url}/v1"
