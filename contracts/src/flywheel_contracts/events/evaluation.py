"""Evaluation job lifecycle: one evaluation per candidate and eval type."""

from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import Field, StringConstraints, model_validator

from flywheel_contracts.payload import EventPayload, Part
from flywheel_contracts.primitives import Count, Identifier, Message, ModelName, Percent, Seconds
from flywheel_contracts.run_config import EvalType
from flywheel_contracts.upcasters import RawPayload, register

MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
]


class MetricScore(Part):
    """One metric's mean over the evaluated records, with its 95% confidence interval."""

    name: MetricName = Field(
        description="e.g. function_name_accuracy, function_name_and_args_accuracy, "
        "tool_calling_correctness, similarity."
    )
    value: float = Field(ge=0, le=1, description="Mean score in [0, 1].")
    n: Count = Field(description="Records evaluated, the failed ones included.")
    failed: Count = Field(
        description="Records whose request or scoring failed. They are excluded, not scored 0: "
        "value and the interval are over the n - failed records that were scored."
    )
    ci_low: float = Field(ge=0, le=1)
    ci_high: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.ci_low <= self.value <= self.ci_high:
            raise ValueError("value must lie within [ci_low, ci_high]")
        if self.failed > self.n:
            raise ValueError("failed must not exceed n")
        return self


class UsageStats(Part):
    """Serving cost of the evaluated requests."""

    requests: Count
    latency_p50_ms: float = Field(ge=0)
    latency_p95_ms: float = Field(ge=0)
    prompt_tokens_per_request: float = Field(ge=0)
    completion_tokens_per_request: float = Field(ge=0)
    completion_tokens_per_second: float | None = Field(
        default=None,
        ge=0,
        description="Completion tokens over the time their requests took, summed over records.",
    )
    rate_limited: Count = Field(
        default=0, description="429 answers waited out (Retry-After honoured) before a reply."
    )

    @property
    def tokens_per_request(self) -> float:
        return self.prompt_tokens_per_request + self.completion_tokens_per_request


class EvalStarted(EventPayload):
    """An evaluation job was created in NMP."""

    EVENT_TYPE: ClassVar[str] = "eval.started"
    SCHEMA_VERSION: ClassVar[int] = 1

    candidate_model: ModelName
    eval_type: EvalType
    job_id: Identifier
    target_model: ModelName = Field(description="Model id under test (the adapter for customized).")


class EvalProgress(EventPayload):
    """An evaluation job's progress, published when it changes."""

    EVENT_TYPE: ClassVar[str] = "eval.progress"
    SCHEMA_VERSION: ClassVar[int] = 1

    candidate_model: ModelName
    eval_type: EvalType
    job_id: Identifier
    percent: Percent


class EvalErrorKind(StrEnum):
    JOB_FAILED = "job_failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    CUSTOMIZATION_FAILED = "customization_failed"
    INVALID_RESULTS = "invalid_results"
    INTERNAL_ERROR = "internal_error"
    RATE_LIMITED = "rate_limited"
    """The candidate kept answering 429 longer than the evaluator waits."""
    SCHEMA_REFUSED = "schema_refused"
    """The candidate's server refused the tool schemas (see `evaluation.tool_schema_compat`)."""


class EvalError(Part):
    kind: EvalErrorKind
    message: Message


class EvalDone(EventPayload):
    """An evaluation ended: scores and usage on success, `error` otherwise."""

    EVENT_TYPE: ClassVar[str] = "eval.done"
    SCHEMA_VERSION: ClassVar[int] = 2

    candidate_model: ModelName
    eval_type: EvalType
    job_id: Identifier | None = Field(description="None when the job was never created.")
    target_model: ModelName
    scores: tuple[MetricScore, ...] = ()
    usage: UsageStats | None = None
    error: EvalError | None = None
    runtime_seconds: Seconds = 0.0

    @model_validator(mode="after")
    def _ok_or_error(self) -> Self:
        succeeded = bool(self.scores) and self.usage is not None
        if succeeded == (self.error is not None):
            raise ValueError("set either scores and usage, or error")
        names = [score.name for score in self.scores]
        if len(set(names)) != len(names):
            raise ValueError("metric names must not repeat")
        return self

    @property
    def ok(self) -> bool:
        return self.error is None


# v2: usage gained `completion_tokens_per_second` and `rate_limited`; two error kinds were added.
@register(EvalDone.EVENT_TYPE, from_version=1)
def _evaldone_v1_to_v2(payload: RawPayload) -> RawPayload:
    return payload
