"""Run lifecycle: requested, cancelled, and the terminal outcomes."""

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from flywheel_contracts.events.leaderboard import Leaderboard
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.primitives import Identifier, Label, Message
from flywheel_contracts.run_config import RunOverrides
from flywheel_contracts.upcasters import RawPayload, register


class RunRequested(EventPayload):
    """A client asks for a run over one workload's logged traffic."""

    EVENT_TYPE: ClassVar[str] = "run.requested"
    SCHEMA_VERSION: ClassVar[int] = 3

    workload_id: Identifier = Field(description="The logged workload to study.")
    client_id: Identifier = Field(description="The client whose traffic is used.")
    overrides: RunOverrides = Field(
        default=RunOverrides(), description="Per-run changes to the deployment's defaults."
    )
    requested_by: Label | None = Field(default=None, description="Who asked, for the audit trail.")


class RunCancelled(EventPayload):
    """A client stops a run; every service drops its work and the janitor reclaims resources."""

    EVENT_TYPE: ClassVar[str] = "run.cancelled"
    SCHEMA_VERSION: ClassVar[int] = 1

    reason: Message = Field(default="cancelled by request", description="Why the run is stopped.")
    requested_by: Label | None = Field(default=None, description="Who asked, for the audit trail.")


class RunCompleted(EventPayload):
    """The run finished; the leaderboard says how each candidate did."""

    EVENT_TYPE: ClassVar[str] = "run.completed"
    SCHEMA_VERSION: ClassVar[int] = 3

    workload_id: Identifier
    client_id: Identifier
    leaderboard: Leaderboard


class RunFailureReason(StrEnum):
    DATASET_FAILED = "dataset_failed"
    NO_CANDIDATE_DEPLOYED = "no_candidate_deployed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INTERNAL_ERROR = "internal_error"


class RunFailed(EventPayload):
    """The run ended without a leaderboard."""

    EVENT_TYPE: ClassVar[str] = "run.failed"
    SCHEMA_VERSION: ClassVar[int] = 1

    reason: RunFailureReason
    message: Message
    stage: Label | None = Field(default=None, description="The stage that failed, if one did.")


# v2 added the production row, savings and ratios, and the decision's data: all optional.
@register(RunCompleted.EVENT_TYPE, from_version=1)
def _run_completed_v1_to_v2(payload: RawPayload) -> RawPayload:
    return payload


# v2 added the `min_score_to_recommend` override: a v1 request has none.
@register(RunRequested.EVENT_TYPE, from_version=1)
def _run_requested_v1_to_v2(payload: RawPayload) -> RawPayload:
    return payload


# v3 of both: external endpoints, split input/output prices and `evaluation.tool_schema_compat` in the run configuration, all optional; and in the
# leaderboard, `external` and `rate_limited` per entry, and tokens per second and 429s in usage.
@register(RunRequested.EVENT_TYPE, from_version=2)
def _run_requested_v2_to_v3(payload: RawPayload) -> RawPayload:
    return payload


@register(RunCompleted.EVENT_TYPE, from_version=2)
def _run_completed_v2_to_v3(payload: RawPayload) -> RawPayload:
    return payload
