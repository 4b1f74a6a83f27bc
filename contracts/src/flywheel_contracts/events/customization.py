"""LoRA customization job lifecycle."""

from enum import StrEnum
from typing import ClassVar, Self

from pydantic import Field, model_validator

from flywheel_contracts.events.datasets import DatasetContext
from flywheel_contracts.events.nims import DeploymentRef
from flywheel_contracts.payload import EventPayload, Part
from flywheel_contracts.primitives import Count, Identifier, Message, ModelName, Percent, Seconds
from flywheel_contracts.upcasters import RawPayload, register


class CustomizationStarted(EventPayload):
    """A training job was created in NMP."""

    EVENT_TYPE: ClassVar[str] = "customization.started"
    SCHEMA_VERSION: ClassVar[int] = 1

    candidate_model: ModelName = Field(description="The base model being customized.")
    job_id: Identifier = Field(description="NMP customization job id.")
    output_model: ModelName = Field(description="Name the customized model will be served under.")


class CustomizationProgress(EventPayload):
    """A training job's progress, published when it changes."""

    EVENT_TYPE: ClassVar[str] = "customization.progress"
    SCHEMA_VERSION: ClassVar[int] = 1

    candidate_model: ModelName
    job_id: Identifier
    percent: Percent
    epochs_completed: Count
    steps_completed: Count
    train_loss: float | None = Field(default=None, ge=0)
    val_loss: float | None = Field(default=None, ge=0)


class CustomizationErrorKind(StrEnum):
    TRAINING_FAILED = "training_failed"
    INSUFFICIENT_GPUS = "insufficient_gpus"
    STALLED = "stalled"
    CANCELLED = "cancelled"
    MODEL_SYNC_FAILED = "model_sync_failed"
    INTERNAL_ERROR = "internal_error"


class CustomizationError(Part):
    kind: CustomizationErrorKind
    message: Message


class CustomizationDone(EventPayload):
    """A training job ended: `customized_model` on success, `error` otherwise.

    It repeats the deployment and the dataset context so the evaluator can run the customized
    evaluation even when this event overtakes `nim.up`.
    """

    EVENT_TYPE: ClassVar[str] = "customization.done"
    SCHEMA_VERSION: ClassVar[int] = 2

    candidate_model: ModelName
    job_id: Identifier | None = Field(description="None when the job was never created.")
    customized_model: ModelName | None = Field(
        default=None, description="Model id of the trained adapter, served by the deployment."
    )
    error: CustomizationError | None = None
    epochs_completed: Count = 0
    steps_completed: Count = 0
    runtime_seconds: Seconds = 0.0
    deployment: DeploymentRef
    context: DatasetContext

    @model_validator(mode="after")
    def _ok_or_error(self) -> Self:
        if (self.customized_model is None) == (self.error is None):
            raise ValueError("exactly one of customized_model and error must be set")
        return self

    @property
    def ok(self) -> bool:
        return self.error is None


# v2: the run configuration in its context gained external endpoints, split prices and `tool_schema_compat`, all optional.
@register(CustomizationDone.EVENT_TYPE, from_version=1)
def _customizationdone_v1_to_v2(payload: RawPayload) -> RawPayload:
    return payload
