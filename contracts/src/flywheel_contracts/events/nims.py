"""Candidate deployments (NIMs)."""

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from flywheel_contracts.events.datasets import DatasetContext
from flywheel_contracts.payload import EventPayload, Part
from flywheel_contracts.primitives import HttpUrl, Identifier, Message, ModelName, Seconds
from flywheel_contracts.run_config import CandidateConfig
from flywheel_contracts.upcasters import RawPayload, register


class DeploymentRef(Part):
    """A serving deployment in NMP and how to reach it."""

    namespace: Identifier
    name: Identifier = Field(description="NMP deployment name.")
    base_url: HttpUrl = Field(description="OpenAI-compatible base URL serving the model.")
    model_id: ModelName = Field(description="Model id to send in inference requests.")


class DeploymentRole(StrEnum):
    CANDIDATE = "candidate"
    """A model under evaluation (and training)."""
    JUDGE = "judge"
    """The run's own LLM judge, deployed through NMP like a candidate; never evaluated."""


class NimUp(EventPayload):
    """A candidate (or the run's judge) is deployed and serving; carries everything evaluation
    and training need."""

    EVENT_TYPE: ClassVar[str] = "nim.up"
    SCHEMA_VERSION: ClassVar[int] = 3

    candidate: CandidateConfig
    deployment: DeploymentRef
    context: DatasetContext
    role: DeploymentRole = Field(
        DeploymentRole.CANDIDATE,
        description="What the deployment is for: evaluators and trainers act on candidates only.",
    )


class NimFailureReason(StrEnum):
    INSUFFICIENT_GPUS = "insufficient_gpus"
    DEPLOY_FAILED = "deploy_failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class NimFailed(EventPayload):
    """A candidate could not be deployed."""

    EVENT_TYPE: ClassVar[str] = "nim.failed"
    SCHEMA_VERSION: ClassVar[int] = 1

    candidate_model: ModelName
    deployment_name: Identifier
    reason: NimFailureReason
    message: Message


class NimDownReason(StrEnum):
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SHUTDOWN = "shutdown"


class NimDown(EventPayload):
    """A candidate's deployment was removed."""

    EVENT_TYPE: ClassVar[str] = "nim.down"
    SCHEMA_VERSION: ClassVar[int] = 1

    candidate_model: ModelName
    deployment_name: Identifier
    reason: NimDownReason
    deployment_seconds: Seconds = Field(description="Time from deploy request to removal.")


# v2 added `role`: every v1 deployment was a candidate.
@register(NimUp.EVENT_TYPE, from_version=1)
def _nim_up_v1_to_v2(payload: RawPayload) -> RawPayload:
    return {**payload, "role": DeploymentRole.CANDIDATE.value}


# v3: external endpoints, split input/output prices and `evaluation.tool_schema_compat` in the run configuration, all optional.
@register(NimUp.EVENT_TYPE, from_version=2)
def _nim_up_v2_to_v3(payload: RawPayload) -> RawPayload:
    return payload
