"""The report carried by `run.completed`."""

from typing import Self

from pydantic import Field, model_validator

from flywheel_contracts.events.evaluation import MetricScore
from flywheel_contracts.payload import Part
from flywheel_contracts.primitives import Message, ModelName, Seconds
from flywheel_contracts.run_config import EvalType


class LeaderboardEntry(Part):
    """How one candidate did in one evaluation type."""

    candidate_model: ModelName
    eval_type: EvalType
    scores: tuple[MetricScore, ...] = ()
    latency_p50_ms: float | None = Field(default=None, ge=0)
    latency_p95_ms: float | None = Field(default=None, ge=0)
    tokens_per_request: float | None = Field(default=None, ge=0)
    cost_per_1k_requests_usd: float | None = Field(
        default=None,
        ge=0,
        description="Estimated from tokens per request and the candidate's price.",
    )
    deployment_seconds: Seconds | None = Field(
        default=None, description="How long the candidate's deployment was up."
    )
    error: Message | None = Field(default=None, description="Why this evaluation has no scores.")


class Recommendation(Part):
    """The candidate a reviewer should look at first, or None when no candidate qualifies."""

    candidate_model: ModelName | None
    eval_type: EvalType | None
    reason: Message

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.candidate_model is None) != (self.eval_type is None):
            raise ValueError("candidate_model and eval_type are set together")
        return self


class Leaderboard(Part):
    entries: tuple[LeaderboardEntry, ...]
    recommendation: Recommendation
