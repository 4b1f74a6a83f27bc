"""The report carried by `run.completed`: every candidate against the production model, and
the decision a reviewer is asked to approve."""

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from flywheel_contracts.events.baseline import ProductionBaseline
from flywheel_contracts.events.evaluation import MetricScore
from flywheel_contracts.payload import Part
from flywheel_contracts.primitives import Count, Label, Message, ModelName, Seconds
from flywheel_contracts.run_config import EvalType

Ratio = float
"""Candidate over production: below 1 is cheaper (cost) or faster (latency)."""


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
    external: bool = Field(
        default=False, description="Reached at an external endpoint: no deployment, no GPUs."
    )
    rate_limited: int = Field(default=0, ge=0, description="429 answers waited out.")
    error: Message | None = Field(default=None, description="Why this evaluation has no scores.")
    cost_ratio: Ratio | None = Field(
        default=None, ge=0, description="Cost per request over production's; None if unknown."
    )
    monthly_saving_usd: float | None = Field(
        default=None,
        description="Production's monthly cost minus this one's at the logged volume (30 days); "
        "negative when dearer, None when a price or the volume is unknown.",
    )
    latency_p50_ratio: Ratio | None = Field(default=None, ge=0)
    latency_p95_ratio: Ratio | None = Field(default=None, ge=0)


class ProductionRow(Part):
    """The leaderboard's reference row: the production model on the same records."""

    baseline: ProductionBaseline
    price_per_1k_tokens: float | None = Field(
        default=None, ge=0, description="From the price table; None: unknown, never taken as 0."
    )
    cost_per_1k_requests_usd: float | None = Field(default=None, ge=0)
    monthly_cost_usd: float | None = Field(
        default=None, ge=0, description="At the logged volume over 30 days."
    )


class Shortfall(StrEnum):
    """Why an evaluated candidate is not the recommendation."""

    NOT_EVALUATED = "not_evaluated"
    BELOW_THRESHOLD = "below_threshold"
    """Its score's mean is below the threshold."""
    INTERVAL_TOO_WIDE = "interval_too_wide"
    """The mean clears the threshold but the interval's lower bound does not."""
    TOO_MANY_FAILURES = "too_many_failures"
    TOO_EXPENSIVE = "too_expensive"
    TOO_SLOW = "too_slow"
    OUTRANKED = "outranked"
    """Qualified, but another qualified one saves more."""


class Verdict(Part):
    """How one candidate and evaluation type fared against the rules of the decision."""

    candidate_model: ModelName
    eval_type: EvalType
    qualified: bool
    shortfall: Shortfall | None = None
    detail: Message


class Recommendation(Part):
    """The candidate a reviewer should look at first, or None when no candidate qualifies.

    Decided on the lower bound of the 95% interval of the primary metric against the threshold,
    then on optional cost and latency limits; among those that qualify, the one that saves most
    (else the one with the highest lower bound)."""

    candidate_model: ModelName | None
    eval_type: EvalType | None
    reason: Message = Field(description="One plain sentence: the decision and why.")
    model_id: ModelName | None = Field(
        default=None,
        description="The exact model id to promote: the customized model id for a customized "
        "candidate, else the candidate's model.",
    )
    base_model: ModelName | None = Field(
        default=None, description="The base of a customized model id."
    )
    metric: Label | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    score: MetricScore | None = None
    monthly_saving_usd: float | None = None
    cost_ratio: Ratio | None = Field(default=None, ge=0)
    latency_p95_ratio: Ratio | None = Field(default=None, ge=0)
    verdicts: tuple[Verdict, ...] = ()
    records_needed: Count | None = Field(
        default=None,
        description="When no interval can clear the threshold with this many evaluation "
        "records: how many the best mean would need.",
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.candidate_model is None) != (self.eval_type is None):
            raise ValueError("candidate_model and eval_type are set together")
        return self


class Leaderboard(Part):
    entries: tuple[LeaderboardEntry, ...]
    recommendation: Recommendation
    production: ProductionRow | None = Field(
        default=None, description="The reference row; None when the logs gave no baseline."
    )
