"""NeMo Relay's events (real fixtures: `tools/producers/relay_agent.py --fixtures`) to call items
and records: what a body pairs into, what each call becomes, and why some are refused."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import ProducerSettings, RelaySettings
from flywheel_ingest.producers import Format, Untranslatable
from flywheel_ingest.producers.relay import answer, items_of, to_record
from flywheel_ingest.producers.translate import verdict
from flywheel_ingest.validation import LogRecord, Refusal

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "producers" / "relay"
EXPORT = (FIXTURES / "events.jsonl").read_bytes()
MANIFEST: dict[str, Any] = orjson.loads((FIXTURES / "manifest.json").read_bytes())
LIMIT = 900_000
# What the fixture agent's three runs make of its nine calls, in order.
OUTCOMES = [
    "trip-planner",  # Paris: two tool calls
    "trip-planner",  # its answer
    "trip-planner",  # Tokyo: asks the weather researcher (a tool running a nested agent)
    "weather-researcher",
    "weather-researcher",
    "trip-planner",  # the streamed answer
    RejectReason.TOOL_CALLS_MISSING,  # Lisbon: finish_reason tool_calls, no tool call
    RejectReason.INCOMPLETE_CALL,  # the provider failed
    RejectReason.EMPTY_RESPONSE,  # an empty assistant turn
]


def _lines(path: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (FIXTURES / path).read_bytes().splitlines()]


def _outcome(result: LogRecord | Refusal) -> str:
    return result.workload_id if isinstance(result, LogRecord) else result.reason


def _verdicts(items: list[bytes], settings: ProducerSettings | None = None) -> list[Any]:
    return [
        verdict(item, Format.RELAY_CALL, settings or ProducerSettings(), LIMIT) for item in items
    ]


def test_the_fixture_is_relays_own_export_of_the_agent_described_in_its_manifest() -> None:
    events = [orjson.loads(line) for line in EXPORT.splitlines()]
    export = MANIFEST["export"]
    assert len(events) == export["events"] == MANIFEST["subscriber_saw"]["events"]
    assert sum(1 for e in events if e.get("category") == "llm") == 2 * export["llm_calls"] == 18
    assert {e["atof_version"] for e in events} == {"0.1"}
    # A subscriber sees exactly what the file export writes.
    assert _lines("subscriber-events.jsonl") == events


def test_a_relay_export_pairs_into_one_item_per_llm_call_in_body_order() -> None:
    body = items_of(EXPORT)
    assert len(body.items) == MANIFEST["export"]["llm_calls"] == 9
    assert (body.unpaired, body.unreadable) == (0, 0)
    assert body.ignored == MANIFEST["export"]["events"] - 18  # agents, tools, stream chunks
    assert all(len(positions) == 2 for positions in body.positions)
    assert body.positions == sorted(body.positions)
    lines = EXPORT.splitlines()
    for item, (start, end) in zip(body.items, body.positions, strict=True):
        call = orjson.loads(item)
        assert orjson.loads(lines[start - 1]) == call["start"]
        assert orjson.loads(lines[end - 1]) == call["end"]


def test_every_call_becomes_a_record_or_an_explained_refusal() -> None:
    results = _verdicts(items_of(EXPORT).items)
    assert [_outcome(result) for result in results] == OUTCOMES
    refused = [r for r in results if isinstance(r, Refusal)]
    assert "upstream 503: model overloaded" in refused[1].message


def test_the_records_are_those_the_relay_subscriber_made_from_the_same_run() -> None:
    """One mapping, whichever way a call travels (the subscriber ran beside the file export)."""
    from_export = [record for record in map(_record, items_of(EXPORT).items) if record]
    assert from_export == _lines("subscriber-records.jsonl")
    assert len(from_export) == MANIFEST["subscriber"]["records"] == 8
    assert MANIFEST["subscriber"]["skipped"] == {"incomplete_call": 1}


def test_records_of_one_agent_run_share_its_run_id_and_number_their_steps_from_zero() -> None:
    records = [
        result.fields
        for result in _verdicts(items_of(EXPORT).items)
        if isinstance(result, LogRecord)
    ]
    by_run: dict[str, list[int]] = {}
    for record in records:
        metadata = record["metadata"]
        assert metadata["producer"] == "nemo-relay"
        by_run.setdefault(metadata["agent_run"], []).append(metadata["step"])
    # Paris (0, 1), Tokyo (0, 1), the nested researcher (0, 1); Lisbon's three were refused.
    assert sorted(by_run.values()) == [[0, 1], [0, 1], [0, 1]]
    all_steps = Counter(
        (call["context"]["agent_run"], call["context"]["step"])
        for call in map(orjson.loads, items_of(EXPORT).items)
    )
    assert sorted(Counter(run for run, _ in all_steps).values()) == [2, 2, 2, 3]
    assert max(all_steps.values()) == 1


def test_a_record_carries_the_raw_request_and_response_of_its_events() -> None:
    item = orjson.loads(items_of(EXPORT).items[0])
    record = to_record(item, ProducerSettings())
    assert record["request"] == item["start"]["data"]["content"]
    assert record["response"] == item["end"]["data"]
    assert record["timestamp"] == item["start"]["timestamp"]
    assert (record["workload_id"], record["client_id"]) == ("trip-planner", "relay-fixture")
    calls = record["response"]["choices"][0]["message"]["tool_calls"]
    assert [call["function"]["name"] for call in calls] == ["get_weather", "convert_currency"]
    assert all(call["id"].startswith("call_") for call in calls)
    assert all(isinstance(call["function"]["arguments"], str) for call in calls)


def test_configured_workload_and_client_win_over_the_events() -> None:
    settings = ProducerSettings(relay=RelaySettings(workload_id="trips", client_id="tenant-1"))
    results = _verdicts(items_of(EXPORT).items, settings)
    records = [r for r in results if isinstance(r, LogRecord)]
    assert {(r.workload_id, r.client_id) for r in records} == {("trips", "tenant-1")}


@pytest.mark.parametrize("seed", range(3))
def test_a_body_in_any_order_gives_the_same_records(seed: int) -> None:
    lines = EXPORT.splitlines()
    random.Random(seed).shuffle(lines)
    shuffled = items_of(b"\n".join(lines))
    assert sorted(map(_record, shuffled.items), key=str) == sorted(
        map(_record, items_of(EXPORT).items), key=str
    )


def test_a_json_array_of_events_is_read_like_the_jsonl_export() -> None:
    array = b"[" + b",".join(EXPORT.splitlines()) + b"]"
    assert items_of(array).items == items_of(EXPORT).items


def test_events_sent_one_per_request_are_each_refused_as_unpaired_with_the_way_out() -> None:
    """What Relay's http_post stream sink delivers: every event in a request of its own."""
    results = []
    ignored = 0
    for line in EXPORT.splitlines():
        body = items_of(line)
        ignored += body.ignored
        results.extend(_verdicts(body.items))
    assert len(results) == 18
    assert ignored == MANIFEST["export"]["events"] - 18
    assert {r.reason for r in results} == {RejectReason.UNPAIRED_EVENT}
    assert all("ndjson stream transport" in r.message for r in results)
    assert Counter("only its start" in r.message for r in results) == {True: 9, False: 9}


def test_unreadable_lines_and_lone_halves_are_forwarded_to_be_refused_and_kept() -> None:
    lines = EXPORT.splitlines()
    first_start = next(i for i, line in enumerate(lines) if b'"category":"llm"' in line)
    body = b"\n".join([b"{not json", *lines[: first_start + 1], b"[1, 2]", b"", b"42"])
    parsed = items_of(body)
    assert (parsed.unreadable, parsed.unpaired) == (3, 1)
    assert parsed.positions == [[1], [first_start + 2], [first_start + 3], [first_start + 5]]
    reasons = [r.reason for r in _verdicts(parsed.items)]
    assert reasons == [
        RejectReason.INVALID_JSON,
        RejectReason.UNPAIRED_EVENT,
        RejectReason.NOT_AN_OBJECT,
        RejectReason.NOT_AN_OBJECT,
    ]


def test_the_answer_counts_calls_and_says_why_each_refused_one_was_refused() -> None:
    body = items_of(EXPORT)
    result = answer(body, _verdicts(body.items))
    assert (result["calls"], result["accepted"], result["ignored"]) == (9, 6, body.ignored)
    assert [(r["index"], r["reason"]) for r in result["rejected"]] == [
        (6, "tool_calls_missing"),
        (7, "incomplete_call"),
        (8, "empty_response"),
    ]
    assert all(r["events"] == body.positions[r["index"]] for r in result["rejected"])
    assert all(r["message"] for r in result["rejected"])


@pytest.mark.parametrize(
    ("item", "reason", "words"),
    [
        ({"context": {}}, RejectReason.WRONG_TYPE, "neither a start nor an end"),
        ({"start": {"kind": "mark"}}, RejectReason.WRONG_TYPE, "LLM scope event"),
    ],
)
def test_an_item_that_is_not_a_relay_call_is_refused_with_a_reason(
    item: dict[str, Any], reason: RejectReason, words: str
) -> None:
    with pytest.raises(Untranslatable) as raised:
        to_record(item, ProducerSettings())
    assert raised.value.reason is reason
    assert words in raised.value.message


def test_a_call_without_agent_or_client_is_refused_as_missing_field() -> None:
    item = orjson.loads(items_of(EXPORT).items[0])
    item["context"] = {}
    item["start"]["data"]["headers"] = {}
    with pytest.raises(Untranslatable) as raised:
        to_record(item, ProducerSettings(relay=RelaySettings(client_id="c")))
    assert raised.value.reason is RejectReason.MISSING_FIELD
    assert "no workload" in raised.value.message
    with pytest.raises(Untranslatable, match="no client"):
        to_record(item, ProducerSettings(relay=RelaySettings(workload_id="w")))


def _record(item: bytes) -> dict[str, Any] | None:
    """The record the item translates to, before validation (None when it has none)."""
    try:
        return to_record(orjson.loads(item), ProducerSettings())
    except Untranslatable:
        return None
