"""nim-manager's settings, read from `FLYWHEEL_NIM_MANAGER_*` (nested groups with `__`)."""

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from flywheel_contracts.primitives import ServiceName
from flywheel_contracts.run_config import CandidateConfig
from flywheel_contracts.runtime import ServiceSettings
from flywheel_contracts.runtime.nmp import NmpSettings
from flywheel_nim_manager.leaderboard import Judgement, Pricing


class LocalJudgeSettings(BaseModel):
    """A judge deployed through NMP for each run, like a candidate: queued first, counted
    against the GPU budget, serving until the run's candidates have ended, reclaimed by the
    janitor on cancel. Off by default (the judge is served already, or remote)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    model: str = Field(
        "meta/llama-3.3-70b-instruct",
        min_length=1,
        description="The judge's model when the run's `evaluation.judge_model` is unset; keep "
        "it equal to the evaluator's `JUDGE__MODEL`.",
    )
    gpus: int = Field(2, ge=1, le=64, description="GPUs the judge's deployment needs.")
    tag: str | None = Field(None, description="NIM image tag; None: `default_image_tag`.")

    def candidate(self) -> CandidateConfig | None:
        """The judge as the scheduler deploys it, or None when off."""
        if not self.enabled:
            return None
        return CandidateConfig(model_name=self.model, gpus=self.gpus, tag=self.tag)


DEFAULT_PRICES = {
    "meta/llama-3.3-70b-instruct": 0.00088,
    "meta/llama-3.1-8b-instruct": 0.0002,
    "meta/llama-3.2-3b-instruct": 0.00015,
    "meta/llama-3.2-1b-instruct": 0.0001,
}
"""Illustrative USD prices per 1,000 tokens for the demo's models; set your own."""


class RecommendSettings(BaseModel):
    """Limits of the recommendation beyond the run's score threshold (ratios to production)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_failed_ratio: float = Field(
        0.1, ge=0, le=1, description="Most failed requests an evaluation may have to qualify."
    )
    max_cost_ratio: float | None = Field(
        None, gt=0, description="Highest cost per request relative to production; None: any."
    )
    max_latency_ratio: float | None = Field(
        None, gt=0, description="Highest p95 latency relative to production; None: any."
    )


class NimManagerSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_NIM_MANAGER_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    service_name: ServiceName = "nim-manager"
    http_port: int = Field(8103, ge=0, le=65535)
    nmp: NmpSettings = NmpSettings()

    gpu_budget: int = Field(
        4,
        ge=1,
        description="GPUs candidate deployments and their training jobs may hold at once, "
        "across all runs.",
    )
    tick_interval_s: float = Field(
        0.5, gt=0, description="Longest pause between two passes of the scheduler."
    )
    lease_ttl_s: float = Field(
        10.0,
        gt=0,
        description="How long the scheduler lease outlives its holder's last renewal; a standby "
        "takes over this long after the active instance died.",
    )
    deploy_timeout_s: float = Field(
        3600.0, gt=0, description="From GPU grant to ready and synced; then nim.failed."
    )
    work_timeout_s: float = Field(
        6 * 3600.0,
        gt=0,
        description="How long a deployed candidate waits for its evaluations and customization "
        "before it is removed anyway.",
    )
    default_image_tag: str = Field(
        "1.8.3", min_length=1, description="NIM image tag for candidates that set none."
    )
    pvc_size: str = Field("25Gi", min_length=1, description="Model cache volume per deployment.")
    local_judge: LocalJudgeSettings = LocalJudgeSettings()
    prices: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="USD per 1,000 tokens by model, for production and candidates (a "
        "candidate's own `price_per_1k_tokens` wins when above 0); a model not listed has an "
        "unknown price, shown as unknown, never as 0.",
    )
    recommend: RecommendSettings = RecommendSettings()

    def judgement(self) -> Judgement:
        return Judgement(
            pricing=Pricing(self.prices),
            max_failed_ratio=self.recommend.max_failed_ratio,
            max_cost_ratio=self.recommend.max_cost_ratio,
            max_latency_ratio=self.recommend.max_latency_ratio,
        )
