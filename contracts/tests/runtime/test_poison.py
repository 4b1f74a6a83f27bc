"""Poison never stalls and never vanishes: each class of bad message, through the dispatcher with
a fake dead-letter sender, ends in `<topic>.dlq` with its reason, kind and origin."""

import json
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from structlog.testing import capture_logs

from flywheel_contracts.envelope import encode
from flywheel_contracts.errors import PermanentError
from flywheel_contracts.events import RunCancelled
from flywheel_contracts.examples import EXAMPLES
from flywheel_contracts.runtime.delivery import (
    RECORD_OVERHEAD_BYTES,
    DeadLetterHealth,
    ErrorKind,
    Headers,
    Origin,
    Outcome,
    classify_undecodable,
    fit_dead_letter,
)
from flywheel_contracts.runtime.dispatcher import EventDispatcher, InboundMessage, Route

from .test_dispatcher import POLICY, TOPIC, FakeProcessed, FakeSender, Handler, Sleeps, _event

pytestmark = pytest.mark.unit

MB = 1024 * 1024


def _tweaked(**changes: Any) -> bytes:
    """A valid run.cancelled envelope with top-level fields (or payload fields) changed."""
    data = json.loads(encode(_event()))
    payload = changes.pop("payload", {})
    data.update(changes)
    data["payload"].update(payload)
    return json.dumps(data).encode()


POISON: dict[str, tuple[bytes | None, ErrorKind]] = {
    "over_1_mb": (_tweaked(payload={"reason": "x" * (3 * MB // 2)}), ErrorKind.INVALID_EVENT),
    "deeply_nested_json": (b"[" * 100_000 + b"]" * 100_000, ErrorKind.TOO_DEEP),
    "deeply_nested_inside_an_envelope": (
        _tweaked(payload={"reason": None}).replace(b"null", b"[" * 100_000 + b"]" * 100_000),
        ErrorKind.TOO_DEEP,
    ),
    "not_utf8": (b'{"event_type": "run.cancelled\xff\xfe"}', ErrorKind.NOT_UTF8),
    "not_json": (b"{not json", ErrorKind.NOT_JSON),
    "tombstone": (None, ErrorKind.TOMBSTONE),
    "not_an_envelope": (b"[1, 2, 3]", ErrorKind.NOT_AN_ENVELOPE),
    "unknown_event_type": (_tweaked(event_type="run.exploded"), ErrorKind.UNKNOWN_EVENT_TYPE),
    "wrong_event_type": (encode(EXAMPLES["run.requested"]), ErrorKind.WRONG_EVENT_TYPE),
    "newer_schema_version": (
        _tweaked(schema_version=RunCancelled.SCHEMA_VERSION + 1),
        ErrorKind.NEWER_SCHEMA_VERSION,
    ),
    "schema_version_zero": (_tweaked(schema_version=0), ErrorKind.UNSUPPORTED_SCHEMA_VERSION),
    "payload_failing_validation": (_tweaked(payload={"surprise": 1}), ErrorKind.INVALID_EVENT),
}


def _dispatcher(
    sender: FakeSender, handler: Handler | None = None, **options: Any
) -> EventDispatcher:
    return EventDispatcher(
        service="kit-test",
        routes={TOPIC: Route(RunCancelled, handler or Handler())},
        dead_letters=sender,
        processed=FakeProcessed(),
        policy=POLICY,
        sleep=Sleeps(),
        **options,
    )


def _message(value: bytes | None, offset: int = 7) -> InboundMessage:
    return InboundMessage(Origin(TOPIC, 2, offset), b"key", value, [("event_type", b"x")])


@pytest.mark.parametrize(("value", "kind"), POISON.values(), ids=POISON.keys())
async def test_each_poison_class_is_dead_lettered_whole_with_its_reason_and_origin(
    value: bytes | None, kind: ErrorKind
) -> None:
    sender, handler = FakeSender(), Handler()
    dispatcher = _dispatcher(sender, handler)

    with capture_logs() as logs:
        outcome = await dispatcher.dispatch(_message(value, offset=41))

    assert outcome is Outcome.DEAD_LETTERED
    assert handler.calls == 0
    [(topic, sent, key, headers)] = sender.sent
    assert (topic, sent, key) == ("run.cancelled.dlq", value, b"key")
    found = dict(headers)
    assert found["dlq.reason"] == b"invalid_event"
    assert found["dlq.kind"] == kind.value.encode()
    assert found["dlq.exception"].startswith(b"flywheel_contracts.errors.InvalidEvent: ")
    assert found["dlq.error"]
    assert (found["dlq.origin.topic"], found["dlq.origin.partition"]) == (TOPIC.encode(), b"2")
    assert found["dlq.origin.offset"] == b"41"
    assert "dlq.truncated" not in found
    [summary] = [line for line in logs if line["event"] == "event.handled"]
    assert (summary["outcome"], summary["reason"]) == ("dead_lettered", "invalid_event")
    assert dispatcher.health.failure is None


@pytest.mark.parametrize(("value", "kind"), POISON.values(), ids=POISON.keys())
def test_classify_names_the_poison_class(value: bytes | None, kind: ErrorKind) -> None:
    assert classify_undecodable(value, RunCancelled) is kind


async def test_a_good_event_after_the_poison_still_takes_effect() -> None:
    sender, handler = FakeSender(), Handler()
    dispatcher = _dispatcher(sender, handler)
    good = _event()

    outcomes = [await dispatcher.dispatch(_message(v)) for v, _ in POISON.values()]
    outcomes.append(await dispatcher.dispatch(_message(encode(good))))

    assert outcomes == [Outcome.DEAD_LETTERED] * len(POISON) + [Outcome.OK]
    assert handler.effects == [good.event_id]


async def test_a_handler_failing_on_a_big_event_dead_letters_it_whole() -> None:
    sender = FakeSender()
    raw = encode(_event()) + b" " * (3 * MB // 2)  # JSON with trailing blanks: still valid
    dispatcher = _dispatcher(sender, Handler(PermanentError("refused")))

    assert await dispatcher.dispatch(_message(raw)) is Outcome.DEAD_LETTERED

    [(_, sent, _, headers)] = sender.sent
    assert sent == raw
    assert dict(headers)["dlq.kind"] == b"handler"
    assert dict(headers)["dlq.reason"] == b"permanent_error"


async def test_a_bug_in_the_handler_is_dead_lettered_as_unexpected() -> None:
    sender = FakeSender()
    dispatcher = _dispatcher(sender, Handler(RecursionError("maximum recursion depth exceeded")))

    assert await dispatcher.dispatch(_message(encode(_event()))) is Outcome.DEAD_LETTERED
    assert dict(sender.sent[0][3])["dlq.reason"] == b"unexpected_error"


async def test_a_dead_letter_over_the_limit_is_truncated_and_says_how_big_it_was() -> None:
    sender, limit = FakeSender(), 64 * 1024
    raw = _tweaked(payload={"reason": "x" * 100_000})
    dispatcher = _dispatcher(sender, max_dead_letter_bytes=limit)

    with capture_logs() as logs:
        assert await dispatcher.dispatch(_message(raw)) is Outcome.DEAD_LETTERED

    [(_, sent, key, headers)] = sender.sent
    assert sent is not None and raw.startswith(sent)
    assert 0 < len(sent) < limit - RECORD_OVERHEAD_BYTES
    found = dict(headers)
    assert (found["dlq.truncated"], found["dlq.original.size"]) == (b"true", str(len(raw)).encode())
    assert found["dlq.kind"] == b"invalid_event"
    size = len(sent) + len(key or b"") + sum(len(n) + len(v) for n, v in headers)
    assert size <= limit - RECORD_OVERHEAD_BYTES
    assert any(line["event"] == "event.dead_letter_truncated" for line in logs)


def test_fit_leaves_what_fits_alone() -> None:
    headers: Headers = [("a", b"b")]
    assert fit_dead_letter(b"x" * 100, b"k", headers, 10_000) == (b"x" * 100, headers)
    assert fit_dead_letter(None, b"k", headers, 10) == (None, headers)


class RefusingSender(FakeSender):
    """The broker refuses records over `limit` bytes of value (smaller than we were told)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Headers
    ) -> None:
        if len(value or b"") > self.limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        await super().send(topic, value, key, headers)


async def test_an_unwritable_dead_letter_makes_the_service_unready_until_one_is_written() -> None:
    sender, health = RefusingSender(limit=1000), DeadLetterHealth()
    dispatcher = _dispatcher(sender, health=health)

    with capture_logs() as logs:
        outcome = await dispatcher.dispatch(_message(b"x" * 5000))

    assert outcome is Outcome.FAILED  # not committed: delivered again, never dropped
    assert sender.sent == []
    assert health.failure is not None and "run.cancelled.dlq" in health.failure
    with pytest.raises(RuntimeError, match="a dead letter cannot be written"):
        await health.check()
    [failed] = [line for line in logs if line["event"] == "event.dead_letter_failed"]
    assert "MSG_SIZE_TOO_LARGE" in failed["send_error"]
    assert failed["kind"] == "not_json"

    assert await dispatcher.dispatch(_message(b"small")) is Outcome.DEAD_LETTERED
    assert health.failure is None
    await health.check()
