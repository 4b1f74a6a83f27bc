"""The janitor's report of what it reclaimed."""

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from flywheel_contracts.payload import EventPayload, Part
from flywheel_contracts.primitives import Identifier, Message


class ResourceKind(StrEnum):
    DEPLOYMENT = "deployment"
    CUSTOMIZATION_JOB = "customization_job"
    EVALUATION_JOB = "evaluation_job"
    DATASET = "dataset"
    CUSTOMIZED_MODEL = "customized_model"


class ResourceRef(Part):
    kind: ResourceKind
    id: Identifier = Field(description="NMP id or `namespace/name`.")


class ReclaimFailure(Part):
    resource: ResourceRef
    error: Message


class ReclaimTrigger(StrEnum):
    RUN_CANCELLED = "run_cancelled"
    RUN_FINISHED = "run_finished"
    STALE_RUN = "stale_run"
    SERVICE_STOPPING = "service_stopping"
    SYSTEM_SHUTDOWN = "system_shutdown"


class ResourcesReclaimed(EventPayload):
    """What the janitor reclaimed for one run, and why."""

    EVENT_TYPE: ClassVar[str] = "resources.reclaimed"
    SCHEMA_VERSION: ClassVar[int] = 1

    trigger: ReclaimTrigger
    reason: Message
    reclaimed: tuple[ResourceRef, ...] = ()
    already_gone: tuple[ResourceRef, ...] = ()
    failed: tuple[ReclaimFailure, ...] = ()
