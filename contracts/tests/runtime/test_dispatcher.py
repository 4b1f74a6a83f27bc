"""The delivery rules of one message, with a fake dead-letter sender and processed-ids store."""

from typing import Any
from uuid import UUID, uuid4

import pytest
import structlog
from structlog.testing import capture_logs

from flywheel_contracts.envelope import Envelope, encode, new_event
from flywheel_contracts.errors import PermanentError, RetryableError
from flywheel_contracts.events import RunCancelled, RunRequested
from flywheel_contracts.runtime.delivery import Headers, Origin, Outcome, RetryPolicy
from flywheel_contracts.runtime.dispatcher import EventDispatcher, InboundMessage, Route

pytestmark = pytest.mark.unit

TOPIC = "run.cancelled"
POLICY = RetryPolicy(max_attempts=4, base_delay_s=0.1, max_delay_s=1.0)


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


async def test_a_still_failing_retryable_error_is_dead_lettered_after_the_last_attempt() -> None:
    handler = Handler(*(RetryableError("busy") for _ in range(10)))
    sender, processed = FakeSender(), FakeProcessed()
    raw = encode(_event())

    outcome = await _dispatcher(handler, sender, processed).dispatch(_message(raw))

    assert outcome is Outcome.DEAD_LETTERED
    assert handler.calls == POLICY.max_attempts
    [(topic, value, key, headers)] = sender.sent
    assert (topic, value, key) == ("run.cancelled.dlq", raw, b"key")
    assert dict(headers)[("dlq.reason")] == b"retries_exhausted"
    assert dict(headers)["dlq.attempts"] == b"4"
    assert processed.ids == set()


@pytest.mark.parametrize("error", [PermanentError("no such run"), ZeroDivisionError()])
async def test_permanent_and_unexpected_errors_are_dead_lettered_without_retry(
    error: Exception,
) -> None:
    handler, sender, sleeps = Handler(error), FakeSender(), Sleeps()

    outcome = await _dispatcher(handler, sender, sleep=sleeps).dispatch(_message(encode(_event())))

    assert outcome is Outcome.DEAD_LETTERED
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
