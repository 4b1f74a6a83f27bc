"""The kit's one way to produce an event: `emit` builds it as this service's, derived from its
cause (the same id for a redelivered cause, the cause's run unless told otherwise), and returns
it once published."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.events import ResourcesReclaimed, RunCancelled, ServiceStopping
from flywheel_contracts.runtime.kit import ServiceKit
from flywheel_contracts.runtime.settings import ServiceSettings

pytestmark = pytest.mark.unit


class _Settings(ServiceSettings):
    service_name: str = "janitor"


@pytest.fixture
def kit(monkeypatch: pytest.MonkeyPatch) -> tuple[ServiceKit, list[Envelope[Any]]]:
    kit = ServiceKit(_Settings())
    published: list[Envelope[Any]] = []

    async def publish(envelope: Envelope[Any], *, topic: str | None = None) -> None:
        published.append(envelope)

    monkeypatch.setattr(kit.publisher, "publish", publish)
    return kit, published


def _cancel() -> Envelope[Any]:
    return new_event(RunCancelled(reason="stop"), producer="cli", run_id=uuid.uuid4())


def _reclaimed() -> ResourcesReclaimed:
    return ResourcesReclaimed(trigger="run_cancelled", reason="cancelled by its user")


async def test_an_emitted_event_is_derived_from_its_cause_and_published(
    kit: tuple[ServiceKit, list[Envelope[Any]]],
) -> None:
    service, published = kit
    cause = _cancel()
    event = await service.emit(_reclaimed(), cause=cause)
    assert published == [event]
    assert event.producer == "janitor"
    assert event.run_id == cause.run_id
    assert (event.causation_id, event.correlation_id) == (cause.event_id, cause.correlation_id)
    again = await service.emit(_reclaimed(), cause=cause)
    assert again.event_id == event.event_id  # a redelivered cause emits the same event


async def test_a_discriminator_tells_events_of_one_cause_apart(
    kit: tuple[ServiceKit, list[Envelope[Any]]],
) -> None:
    service, _ = kit
    cause = _cancel()
    first = await service.emit(_reclaimed(), cause=cause, discriminator="a")
    second = await service.emit(_reclaimed(), cause=cause, discriminator="b")
    assert first.event_id != second.event_id


async def test_the_run_can_be_named_and_an_event_without_cause_starts_its_own_chain(
    kit: tuple[ServiceKit, list[Envelope[Any]]],
) -> None:
    service, _ = kit
    other_run = uuid.uuid4()
    named = service.new_event(_reclaimed(), cause=_cancel(), run_id=other_run)
    assert named.run_id == other_run
    stopping = await service.emit(ServiceStopping(service="janitor", instance="i", in_flight=()))
    assert stopping.run_id is None and stopping.causation_id is None
    assert stopping.correlation_id == stopping.event_id
