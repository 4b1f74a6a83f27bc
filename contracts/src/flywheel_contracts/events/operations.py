"""Events outside any run: instances stopping and the whole flywheel shutting down."""

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from flywheel_contracts.payload import EventPayload, Part
from flywheel_contracts.primitives import Identifier, Label, Message, ServiceName


class InFlightWork(Part):
    """Work an instance held when it stopped, so the janitor can watch over it."""

    run_id: UUID
    kind: Label = Field(description="What the work is, e.g. `deployment` or `evaluation_job`.")
    resource_id: Identifier | None = Field(default=None, description="NMP id, if one exists.")


class ServiceStopping(EventPayload):
    """An instance is shutting down gracefully."""

    EVENT_TYPE: ClassVar[str] = "service.stopping"
    SCHEMA_VERSION: ClassVar[int] = 1
    RUN_SCOPED: ClassVar[bool] = False

    service: ServiceName
    instance: Label = Field(description="Host/pod and process that is stopping.")
    in_flight: tuple[InFlightWork, ...] = ()


class SystemShutdown(EventPayload):
    """An operator stops the flywheel: every live resource is to be reclaimed."""

    EVENT_TYPE: ClassVar[str] = "system.shutdown"
    SCHEMA_VERSION: ClassVar[int] = 1
    RUN_SCOPED: ClassVar[bool] = False

    reason: Message = "shutdown requested"
    requested_by: Label | None = None
