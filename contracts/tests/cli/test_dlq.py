"""`flywheel dlq list/show/replay` on the in-memory bus."""

import json
from uuid import uuid4

import pytest

from flywheel_contracts.envelope import encode

from .conftest import FakeBus, Invoke, golden

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

DLQ = "run.cancelled.dlq"


def _dead(bus: FakeBus, value: bytes | None, kind: str, **extra: bytes) -> int:
    headers = [
        ("event_type", b"run.cancelled"),
        ("dlq.reason", b"invalid_event"),
        ("dlq.kind", kind.encode()),
        ("dlq.error", f"it was {kind}".encode()),
        ("dlq.origin.topic", b"run.cancelled"),
        ("dlq.origin.partition", b"1"),
        ("dlq.origin.offset", b"9"),
        *((name.replace("_", "."), value) for name, value in extra.items()),
    ]
    return bus.add_raw(DLQ, value, b"the-key", headers).offset


def test_list_shows_each_dead_letter_with_its_origin_and_reason(
    invoke: Invoke, bus: FakeBus
) -> None:
    _dead(bus, b"{not json", "not_json")
    _dead(bus, None, "tombstone")

    result = invoke("dlq", "list", "run.cancelled")

    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert first.split()[:3] == ["0", "run.cancelled[1]@9", "invalid_event/not_json"]
    assert "it was not_json" in first
    assert second.split()[:3] == ["1", "run.cancelled[1]@9", "invalid_event/tombstone"]
    assert bus.reads == [(DLQ,)]


def test_list_limit_keeps_the_most_recent_and_json_is_parseable(
    invoke: Invoke, bus: FakeBus
) -> None:
    for _ in range(3):
        _dead(bus, b"x", "not_json")
    _dead(bus, b"y" * 10, "invalid_event", dlq_truncated=b"true", dlq_original_size=b"5000000")

    result = invoke("dlq", "list", DLQ, "--limit", "2", "--json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["offset"] for row in rows] == [2, 3]
    assert (rows[1]["truncated"], rows[1]["bytes"]) == (True, 5_000_000)


def test_show_prints_headers_and_value(invoke: Invoke, bus: FakeBus) -> None:
    _dead(bus, b"{not json", "not_json")
    _dead(bus, None, "tombstone")

    shown = invoke("dlq", "show", DLQ, "0")
    tombstone = invoke("dlq", "show", DLQ, "1")
    missing = invoke("dlq", "show", DLQ, "7")

    assert shown.exit_code == 0, shown.output
    assert "dlq.kind: not_json" in shown.stdout.splitlines()
    assert shown.stdout.rstrip().endswith("{not json")
    assert "(no value: a tombstone)" in tombstone.stdout
    assert missing.exit_code == 1
    assert "no dead letter at offset 7 of run.cancelled.dlq" in missing.stderr


def test_replay_republishes_to_the_origin_without_the_dlq_headers(
    invoke: Invoke, bus: FakeBus
) -> None:
    event = golden("run.cancelled", uuid4())
    _dead(bus, b"junk", "not_json")
    _dead(bus, encode(event), "handler")

    result = invoke("dlq", "replay", "run.cancelled", "1")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "replayed run.cancelled.dlq@1 to run.cancelled"
    [sent] = bus.sent
    assert (sent.topic, sent.value, sent.key) == ("run.cancelled", encode(event), b"the-key")
    headers = dict(sent.headers)
    assert headers["replay.from"] == b"run.cancelled.dlq@1"
    assert "replay.at" in headers
    assert headers["event_type"] == b"run.cancelled"
    assert not any(name.startswith("dlq.") for name in headers)


def test_replay_refuses_missing_and_truncated_dead_letters_and_sends_nothing(
    invoke: Invoke, bus: FakeBus
) -> None:
    _dead(bus, b"ok", "handler")
    _dead(bus, b"cut", "handler", dlq_truncated=b"true", dlq_original_size=b"9000000")

    missing = invoke("dlq", "replay", DLQ, "0", "5")
    truncated = invoke("dlq", "replay", DLQ, "0", "1")

    assert (missing.exit_code, truncated.exit_code) == (1, 1)
    assert "no dead letter at offset 5" in missing.stderr
    assert "truncated" in truncated.stderr
    assert bus.sent == []


def test_replay_needs_an_offset(invoke: Invoke) -> None:
    assert invoke("dlq", "replay", DLQ).exit_code == 2
