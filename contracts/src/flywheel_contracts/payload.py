"""Base classes of everything that travels in an event."""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Part(BaseModel):
    """A frozen, closed model: unknown fields are refused, instances never change."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class EventPayload(Part):
    """Body of one event type at one schema version.

    Subclasses set `EVENT_TYPE` (equal to the topic name) and `SCHEMA_VERSION` (bumped on any
    change of shape, with an upcaster from the previous version). `RUN_SCOPED` says whether the
    envelope must carry a run id.
    """

    EVENT_TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]
    RUN_SCOPED: ClassVar[bool] = True
