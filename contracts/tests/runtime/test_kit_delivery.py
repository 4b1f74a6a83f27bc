"""Issue 3, acceptance 2, on the real Kafka and database: retries, dead letters, duplicates."""

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts.catalog import dlq_topic
from flywheel_contracts.envelope import Envelope, decode, encode
from flywheel_contracts.errors import RetryableError
from flywheel_contracts.events import RunCancelled
from flywheel_contracts.runtime.kit import ServiceKit
from flywheel_contracts.runtime.settings import ServiceSettings
from flywheel_contracts.runtime.testing import eventually, read_topic, running

pytestmark = pytest.mark.integration

EventFactory = Callable[..., Envelope[Any]]


class RecordingEffect:
    """A handler whose effect is a document in Mongo, failing first with `failures`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *failures: Exception) -> None:
        self.effects = db[f"effects_{id(self)}"]
        self.failures = list(failures)
        self.attempts = 0

    async def __call__(self, event: Envelope[RunCancelled]) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        # Deliberately not idempotent: a second run would insert a second document.
        await self.effects.insert_one({"event_id": str(event.event_id)})

    async def count(self, event: Envelope[Any]) -> int:
        return await self.effects.count_documents({"event_id": str(event.event_id)})


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _consumed(topic: str, outcome: str) -> float:
    return _sample("flywheel_events_consumed_total", topic=topic, outcome=outcome)


async def test_a_retryable_error_twice_then_success_takes_effect_once(
    make_topic: Callable[[], str],
    settings_for: Callable[..., ServiceSettings],
    kit_db: AsyncDatabase[dict[str, Any]],
    make_event: EventFactory,
) -> None:
    topic = make_topic()
    handler = RecordingEffect(kit_db, RetryableError("busy"), ConnectionResetError("reset"))
    kit = ServiceKit(settings_for())
    kit.subscribe(RunCancelled, handler, topic=topic)
    event = make_event()

    async with running(kit):
        await kit.publisher.publish(event, topic=topic)
        await eventually(lambda: _consumed(topic, "retried") == 1)

    assert handler.attempts == 3
    assert await handler.count(event) == 1
    assert _sample("flywheel_handler_retries_total", topic=topic) == 2
    assert read_topic(kit.settings.kafka.bootstrap_servers, dlq_topic(topic), 1, timeout_s=1) == []


async def test_a_poison_message_is_dead_lettered_with_its_reason_and_the_next_one_is_handled(
    make_topic: Callable[[], str],
    settings_for: Callable[..., ServiceSettings],
    kit_db: AsyncDatabase[dict[str, Any]],
    make_event: EventFactory,
) -> None:
    topic = make_topic()
    handler = RecordingEffect(kit_db)
    kit = ServiceKit(settings_for())
    kit.subscribe(RunCancelled, handler, topic=topic)
    good = make_event()

    async with running(kit):
        await kit.publisher.send(topic, b"{not an envelope", b"poison-key", [("origin", b"test")])
        await kit.publisher.publish(good, topic=topic)
        await eventually(lambda: _consumed(topic, "ok") == 1)

    [dead] = read_topic(kit.settings.kafka.bootstrap_servers, dlq_topic(topic), 1)
    headers = dict(dead.headers() or [])
    assert dead.value() == b"{not an envelope"
    assert dead.key() == b"poison-key"
    assert headers["origin"] == b"test"
    assert headers["dlq.reason"] == b"invalid_event"
    assert headers["dlq.exception"] == (
        b"flywheel_contracts.errors.InvalidEvent: not JSON: "
        b"Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )
    assert headers["dlq.origin.topic"] == topic.encode()
    assert headers["dlq.origin.partition"] == b"0"
    assert headers["dlq.origin.offset"] == b"0"
    assert headers["dlq.service"] == kit.service.encode()
    assert _consumed(topic, "dead_lettered") == 1
    assert await handler.count(good) == 1


async def test_a_duplicate_event_id_is_skipped(
    make_topic: Callable[[], str],
    settings_for: Callable[..., ServiceSettings],
    kit_db: AsyncDatabase[dict[str, Any]],
    make_event: EventFactory,
) -> None:
    topic = make_topic()
    handler = RecordingEffect(kit_db)
    kit = ServiceKit(settings_for())
    kit.subscribe(RunCancelled, handler, topic=topic)
    event = make_event()

    async with running(kit):
        # The same event published twice, as a producer that re-ran its handler would.
        await kit.publisher.publish(event, topic=topic)
        await kit.publisher.publish(event, topic=topic)
        await eventually(lambda: _consumed(topic, "duplicate") == 1)

    assert _consumed(topic, "ok") == 1
    assert _sample("flywheel_duplicates_skipped_total", topic=topic) == 1
    assert await handler.count(event) == 1


async def test_a_handler_publishes_derived_events_before_its_input_is_committed(
    make_topic: Callable[[], str],
    settings_for: Callable[..., ServiceSettings],
    make_event: EventFactory,
) -> None:
    source, derived_topic = make_topic(), make_topic()
    kit = ServiceKit(settings_for())

    async def forward(event: Envelope[RunCancelled]) -> None:
        derived = kit.new_event(RunCancelled(reason="derived"), run_id=event.run_id, cause=event)
        await kit.publisher.publish(derived, topic=derived_topic)

    kit.subscribe(RunCancelled, forward, topic=source)
    event = make_event()

    async with running(kit):
        await kit.publisher.publish(event, topic=source)
        await eventually(lambda: _consumed(source, "ok") == 1)

    [raw] = read_topic(kit.settings.kafka.bootstrap_servers, derived_topic, 1)
    derived = decode(raw.value() or b"")
    assert derived.causation_id == event.event_id
    assert derived.correlation_id == event.correlation_id
    assert raw.key() == event.key()
    assert dict(raw.headers() or [])["event_id"] == str(derived.event_id).encode()
    assert encode(derived) == raw.value()
