"""Envelope construction, keys/headers, and decoding of malformed input."""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from flywheel_contracts import InvalidEvent, PermanentError, decode, encode, new_event
from flywheel_contracts.envelope import Envelope, restored, stored
from flywheel_contracts.events import RunCancelled, RunRequested, SystemShutdown
from flywheel_contracts.examples import EXAMPLES, RUN_ID

pytestmark = pytest.mark.unit

_REQUEST = RunRequested(workload_id="w1", client_id="c1")


def _wire(**changes: Any) -> bytes:
    """The nim.down example's wire form with `changes` applied to the envelope."""
    body = json.loads(encode(EXAMPLES["nim.down"]))
    body.update(changes)
    return json.dumps(body).encode()


def test_root_event_starts_its_own_correlation() -> None:
    event = new_event(_REQUEST, producer="cli", run_id=RUN_ID)
    assert event.correlation_id == event.event_id
    assert event.causation_id is None
    assert event.event_type == "run.requested"
    assert event.schema_version == RunRequested.SCHEMA_VERSION


def test_explicit_correlation_id_is_kept_for_root_events() -> None:
    correlation = uuid4()
    event = new_event(_REQUEST, producer="cli", run_id=RUN_ID, correlation_id=correlation)
    assert event.correlation_id == correlation


def test_derived_event_inherits_correlation_and_is_caused_by_its_input() -> None:
    cause = new_event(_REQUEST, producer="cli", run_id=RUN_ID)
    derived = new_event(RunCancelled(), producer="datasets", run_id=RUN_ID, cause=cause)
    assert derived.causation_id == cause.event_id
    assert derived.correlation_id == cause.correlation_id


def test_redelivered_cause_yields_the_same_event_id() -> None:
    cause = decode(encode(new_event(_REQUEST, producer="cli", run_id=RUN_ID)))
    first = new_event(RunCancelled(), producer="x", run_id=RUN_ID, cause=cause)
    again = new_event(RunCancelled(), producer="x", run_id=RUN_ID, cause=decode(encode(cause)))
    other = new_event(RunCancelled(), producer="x", run_id=RUN_ID, cause=cause, discriminator="b")
    assert first.event_id == again.event_id
    assert other.event_id != first.event_id


def test_cause_and_correlation_id_together_are_refused() -> None:
    cause = new_event(_REQUEST, producer="cli", run_id=RUN_ID)
    with pytest.raises(ValueError, match="correlation_id"):
        new_event(_REQUEST, producer="x", run_id=RUN_ID, cause=cause, correlation_id=uuid4())


def test_key_is_the_run_id_or_the_producer_outside_runs() -> None:
    assert new_event(_REQUEST, producer="cli", run_id=RUN_ID).key() == str(RUN_ID).encode()
    shutdown = new_event(SystemShutdown(), producer="cli", run_id=None)
    assert shutdown.key() == b"cli"


def test_scoped_run_id_is_the_run_of_a_run_event_and_refuses_one_outside_runs() -> None:
    run_event = new_event(RunCancelled(reason="stop"), producer="cli", run_id=RUN_ID)
    assert run_event.scoped_run_id == RUN_ID
    outside = new_event(SystemShutdown(reason="maintenance"), producer="cli", run_id=None)
    with pytest.raises(InvalidEvent, match=r"system\.shutdown \S+ carries no run_id"):
        _ = outside.scoped_run_id


def test_headers_mirror_the_envelope_without_the_payload() -> None:
    event = EXAMPLES["nim.down"]
    headers = dict(event.headers())
    assert headers["event_id"] == str(event.event_id).encode()
    assert headers["event_type"] == b"nim.down"
    assert headers["schema_version"] == b"1"
    assert headers["occurred_at"] == b"2025-06-01T12:25:00Z"
    assert headers["causation_id"] == str(event.causation_id).encode()
    assert "payload" not in headers
    root_headers = dict(EXAMPLES["system.shutdown"].headers())
    assert "run_id" not in root_headers
    assert "causation_id" not in root_headers


def test_occurred_at_is_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    event = new_event(
        _REQUEST, producer="cli", run_id=RUN_ID, occurred_at=datetime(2025, 6, 1, 14, tzinfo=paris)
    )
    assert event.occurred_at == datetime(2025, 6, 1, 12, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("payload", "run_id", "message"),
    [(_REQUEST, None, "requires a run_id"), (SystemShutdown(), RUN_ID, "must not carry")],
)
def test_run_scope_is_enforced(payload: Any, run_id: UUID | None, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        new_event(payload, producer="cli", run_id=run_id)


def test_event_type_must_match_the_payload() -> None:
    fields = EXAMPLES["run.requested"].model_dump() | {"event_type": "run.cancelled"}
    fields["payload"] = _REQUEST
    with pytest.raises(ValidationError, match="event_type"):
        Envelope[Any](**fields)


def test_invalid_event_is_permanent() -> None:
    assert issubclass(InvalidEvent, PermanentError)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b"{}", id="no-event-type"),
        pytest.param(_wire(event_type="nim.sideways"), id="unknown-type"),
        pytest.param(_wire(schema_version=2), id="future-version"),
        pytest.param(_wire(schema_version=0), id="version-zero"),
        pytest.param(_wire(schema_version="1"), id="version-as-text"),
        pytest.param(_wire(schema_version=True), id="version-as-bool"),
        pytest.param(_wire(payload=[]), id="payload-not-object"),
        pytest.param(_wire(payload={"candidate_model": "m"}), id="payload-incomplete"),
        pytest.param(_wire(run_id="not-a-uuid"), id="bad-run-id"),
        pytest.param(_wire(event_id=None), id="missing-event-id"),
        pytest.param(_wire(occurred_at="2025-06-01T12:00:00"), id="naive-time"),
        pytest.param(_wire(producer="x" * 65), id="oversize-producer"),
        pytest.param(_wire(surprise=1), id="unknown-envelope-field"),
        pytest.param(_wire(run_id=None), id="run-event-without-run"),
    ],
)
def test_decode_refuses_malformed_input(raw: bytes) -> None:
    with pytest.raises(InvalidEvent):
        decode(raw)


def test_json_nested_deeper_than_the_parser_can_go_is_an_invalid_event_not_a_crash() -> None:
    with pytest.raises(InvalidEvent, match="nested too deeply"):
        decode(b"[" * 100_000 + b"]" * 100_000)


def test_a_stored_event_is_restored_as_it_was_consumed() -> None:
    original = EXAMPLES["nim.down"]
    text = stored(original)
    assert isinstance(text, str)
    assert restored(text) == original
    assert restored(text).headers() == original.headers()
    with pytest.raises(InvalidEvent):
        restored(text[:-1])
