"""The delivery rules of one message, with a fake dead-letter sender and processed-ids store."""

from typing import Any
from uuid import UUID, uuid4

import pytest
import structlog
from structlog.testing import capture_logs

from flywheel_contracts.envelope import Envelope, encode, new_event
from flywheel_contracts.errors import InvalidEvent, PermanentError, RetryableError
from flywheel_contracts.events import RunCancelled, RunRequested
from flywheel_contracts.runtime.delivery import (
    Headers,
    Origin,
    OutageHealth,
    Outcome,
    RedeliveryPolicy,
    RetryPolicy,
)
from flywheel_contracts.runtime.dispatcher import (
    EventDispatcher,
    InboundMessage,
    InvalidHandler,
    Route,
)

pytestmark = pytest.mark.unit

TOPIC = "run.cancelled"
POLICY = RetryPolicy(max_attempts=4, base_delay_s=0.1, max_delay_s=1.0)
REDELIVERY = RedeliveryPolicy(base_delay_s=2.0, max_delay_s=20.0)


class FakeSender:
    def __init__(self, *, broken: bool = False) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, Headers]] = []
        self.broken = broken

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Headers
    ) -> None:
        if self.broken:
            raise ConnectionError("kafka is down")
        self.sent.append((topic, value, key, headers))


class FakeProcessed:
    def __init__(self) -> None:
        self.ids: set[UUID] = set()

    async def seen(self, event_id: UUID) -> bool:
        return event_id in self.ids

    async def mark(self, event_id: UUID, event_type: str) -> None:
        self.ids.add(event_id)


class Handler:
    """Fails with `failures` (in order) before taking effect."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.effects: list[UUID] = []
        self.log_context: dict[str, Any] = {}

    async def __call__(self, event: Envelope[RunCancelled]) -> None:
        self.calls += 1
        self.log_context = structlog.contextvars.get_contextvars()
        if self.failures:
            raise self.failures.pop(0)
        self.effects.append(event.event_id)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def _dispatcher(
    handler: Handler,
    sender: FakeSender | None = None,
    processed: FakeProcessed | None = None,
    sleep: Sleeps | None = None,
) -> EventDispatcher:
    return EventDispatcher(
        service="kit-test",
        routes={TOPIC: Route(RunCancelled, handler)},
        dead_letters=sender or FakeSender(),
        processed=processed or FakeProcessed(),
        policy=POLICY,
        sleep=sleep or Sleeps(),
        redelivery=REDELIVERY,
    )


def _event() -> Envelope[Any]:
    return new_event(RunCancelled(reason="test"), producer="client", run_id=uuid4())


def _message(value: bytes, offset: int = 7) -> InboundMessage:
    return InboundMessage(Origin(TOPIC, 0, offset), b"key", value, [("event_type", b"x")])


async def test_a_handled_event_is_marked_processed() -> None:
    handler, processed, event = Handler(), FakeProcessed(), _event()

    outcome = await _dispatcher(handler, processed=processed).dispatch(_message(encode(event)))

    assert outcome is Outcome.OK
    assert handler.effects == [event.event_id]
    assert processed.ids == {event.event_id}


async def test_retryable_errors_are_retried_with_backoff_and_take_effect_once() -> None:
    handler = Handler(RetryableError("busy"), TimeoutError())
    sleeps, sender = Sleeps(), FakeSender()

    outcome = await _dispatcher(handler, sender, sleep=sleeps).dispatch(_message(encode(_event())))

    assert outcome is Outcome.RETRIED
    assert handler.calls == 3
    assert len(handler.effects) == 1
    assert sleeps.delays == [0.1, 0.2]
    assert sender.sent == []


async def test_a_retryable_error_outlasting_the_retries_is_redelivered_not_dead_lettered() -> None:
    handler = Handler(*(RetryableError("busy") for _ in range(10)))
    sender, processed = FakeSender(), FakeProcessed()

    outcome = await _dispatcher(handler, sender, processed).dispatch(_message(encode(_event())))

    assert outcome is Outcome.FAILED
    assert handler.calls == POLICY.max_attempts
    assert sender.sent == []
    assert processed.ids == set()


async def test_an_outage_of_50_failures_is_waited_out_and_takes_effect_once() -> None:
    handler = Handler(*(RetryableError("mongo unreachable") for _ in range(50)))
    sender, processed, event = FakeSender(), FakeProcessed(), _event()
    dispatcher = _dispatcher(handler, sender, processed)
    message = _message(encode(event))
    outcomes: list[Outcome] = []
    delays: list[float] = []

    while not outcomes or outcomes[-1] is Outcome.FAILED:  # the broker adapter's redelivery
        outcomes.append(await dispatcher.dispatch(message))
        if outcomes[-1] is Outcome.FAILED:
            delays.append(dispatcher.redelivery_delay(message.origin))

    assert outcomes == [Outcome.FAILED] * 12 + [Outcome.RETRIED]
    assert handler.calls == 51
    assert handler.effects == [event.event_id]
    assert processed.ids == {event.event_id}
    assert sender.sent == []
    assert delays == [2.0, 4.0, 8.0, 16.0] + [20.0] * 8


async def test_redelivery_backoff_starts_over_for_the_next_message() -> None:
    handler = Handler(*(RetryableError("busy") for _ in range(2 * POLICY.max_attempts)))
    dispatcher = _dispatcher(handler)
    first = _message(encode(_event()), offset=7)

    await dispatcher.dispatch(first)
    await dispatcher.dispatch(first)

    assert dispatcher.redelivery_delay(first.origin) == 4.0
    assert dispatcher.redelivery_delay(_message(encode(_event()), offset=8).origin) == 2.0


async def test_readiness_fails_while_a_message_waits_on_an_outage_and_recovers() -> None:
    handler = Handler(*(RetryableError("mongo unreachable") for _ in range(POLICY.max_attempts)))
    dispatcher = _dispatcher(handler)
    message = _message(encode(_event()), offset=41)

    await dispatcher.dispatch(message)

    with pytest.raises(RuntimeError) as waiting:
        await dispatcher.outages.check()
    assert "run.cancelled[0]@41" in str(waiting.value)
    assert "RetryableError: mongo unreachable" in str(waiting.value)
    assert dispatcher.health.failure is None  # nothing to do with the dead letters

    assert await dispatcher.dispatch(message) is Outcome.RETRIED
    await dispatcher.outages.check()


async def test_a_stale_waiting_entry_stops_failing_readiness() -> None:
    now = [0.0]
    outages = OutageHealth(stale_after_s=10, clock=lambda: now[0])
    outages.waiting(Origin(TOPIC, 3, 9), "x", rounds=1, attempts=4, next_delay_s=2.0)

    with pytest.raises(RuntimeError):
        await outages.check()
    now[0] = 11.0  # the partition went to another instance: no more rounds here
    await outages.check()


async def test_an_outage_logs_one_line_per_redelivery_round_not_per_attempt() -> None:
    handler = Handler(*(RetryableError("busy") for _ in range(2 * POLICY.max_attempts)))
    dispatcher = _dispatcher(handler)
    message = _message(encode(_event()))

    with capture_logs() as logs:
        for _ in range(3):
            await dispatcher.dispatch(message)

    visible = [line for line in logs if line["log_level"] != "debug"]
    assert [line["event"] for line in visible] == [
        "event.waiting_on_outage",
        "event.waiting_on_outage",
        "event.handled",
    ]
    assert [line["rounds"] for line in visible] == [1, 2, 3]
    assert visible[1]["redeliver_in_s"] == 4.0
    assert visible[1]["attempts"] == POLICY.max_attempts


@pytest.mark.parametrize("error", [PermanentError("no such run"), ZeroDivisionError()])
async def test_permanent_and_unexpected_errors_are_dead_lettered_without_retry(
    error: Exception,
) -> None:
    handler, sender, sleeps = Handler(error), FakeSender(), Sleeps()

    outcome = await _dispatcher(handler, sender, sleep=sleeps).dispatch(_message(encode(_event())))

    assert outcome is Outcome.DEAD_LETTERED
    assert dict(sender.sent[0][3])["dlq.reason"] != b"retries_exhausted"
    assert handler.calls == 1
    assert sleeps.delays == []
    assert dict(sender.sent[0][3])["dlq.origin.offset"] == b"7"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff not json",
        b'{"event_type": "no.such"}',
        encode(
            new_event(RunRequested(workload_id="w", client_id="c"), producer="c", run_id=uuid4())
        ),
    ],
    ids=["garbage", "unknown-type", "wrong-type-for-topic"],
)
async def test_a_message_that_is_not_this_topics_event_is_dead_lettered_as_invalid(
    raw: bytes,
) -> None:
    handler, sender = Handler(), FakeSender()

    outcome = await _dispatcher(handler, sender).dispatch(_message(raw))

    assert outcome is Outcome.DEAD_LETTERED
    assert handler.calls == 0
    assert dict(sender.sent[0][3])["dlq.reason"] == b"invalid_event"


async def test_a_duplicate_event_id_is_skipped() -> None:
    handler, processed, event = Handler(), FakeProcessed(), _event()
    dispatcher = _dispatcher(handler, processed=processed)

    first = await dispatcher.dispatch(_message(encode(event), offset=1))
    again = await dispatcher.dispatch(_message(encode(event), offset=2))

    assert (first, again) == (Outcome.OK, Outcome.DUPLICATE)
    assert handler.effects == [event.event_id]


async def test_when_the_dead_letter_topic_is_unreachable_the_message_is_not_given_up() -> None:
    handler = Handler(PermanentError("bad"))

    outcome = await _dispatcher(handler, FakeSender(broken=True)).dispatch(
        _message(encode(_event()))
    )

    assert outcome is Outcome.FAILED


async def test_handler_logs_carry_the_event_ids_and_one_summary_line_is_written() -> None:
    handler, event = Handler(RetryableError("busy")), _event()

    with capture_logs() as logs:
        await _dispatcher(handler).dispatch(_message(encode(event)))

    assert handler.log_context == {
        "topic": TOPIC,
        "partition": 0,
        "offset": 7,
        "event_id": str(event.event_id),
        "event_type": "run.cancelled",
        "correlation_id": str(event.correlation_id),
        "run_id": str(event.run_id),
    }
    [summary] = [line for line in logs if line["event"] == "event.handled"]
    assert summary["outcome"] == "retried"
    assert summary["attempts"] == 2
    assert summary["event_id"] == str(event.event_id)
    assert summary["duration_ms"] >= 0
    assert structlog.contextvars.get_contextvars() == {}


INVALID_CANCEL = b'{"event_type": "run.cancelled", "schema_version": 1, "payload": {}}'
"""A run.cancelled whose payload fails validation (no reason)."""


def _telling(on_invalid: InvalidHandler) -> tuple[EventDispatcher, FakeSender]:
    """A dispatcher whose route tells `on_invalid` of invalid events of its type."""
    sender = FakeSender()
    dispatcher = EventDispatcher(
        service="kit-test",
        routes={TOPIC: Route(RunCancelled, Handler(), on_invalid)},
        dead_letters=sender,
        processed=FakeProcessed(),
        policy=POLICY,
        sleep=Sleeps(),
    )
    return dispatcher, sender


async def test_a_route_is_told_of_an_invalid_event_of_its_type_before_it_is_dead_lettered() -> None:
    told: list[bytes] = []

    async def on_invalid(raw: bytes, error: InvalidEvent) -> None:
        told.append(raw)

    dispatcher, sender = _telling(on_invalid)
    raw = INVALID_CANCEL

    assert await dispatcher.dispatch(_message(raw)) is Outcome.DEAD_LETTERED
    assert told == [raw]
    assert dict(sender.sent[0][3])["dlq.reason"] == b"invalid_event"


async def test_an_outage_while_telling_of_an_invalid_event_is_waited_out() -> None:
    async def on_invalid(raw: bytes, error: InvalidEvent) -> None:
        raise RetryableError("mongo unreachable")

    dispatcher, sender = _telling(on_invalid)
    raw = INVALID_CANCEL

    assert await dispatcher.dispatch(_message(raw)) is Outcome.FAILED
    assert sender.sent == []
    with pytest.raises(RuntimeError, match="mongo unreachable"):
        await dispatcher.outages.check()
