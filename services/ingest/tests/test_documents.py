"""Document ids: derived from content, blind to key order, spacing and argument form; the
stored body: the record plus the fingerprint of its tools."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from flywheel_contracts.traffic import generate_lines
from flywheel_ingest.documents import (
    TOOLS_FINGERPRINT,
    canonical_json,
    document_id,
    stored_body,
    tools_fingerprint,
)
from flywheel_ingest.validation import LogRecord, validate

pytestmark = pytest.mark.unit


def _id(line: str | bytes) -> str:
    checked = validate(line.encode() if isinstance(line, str) else line, 1 << 20)
    assert isinstance(checked, LogRecord)
    return document_id(canonical_json(checked.fields))


def test_the_same_record_logged_differently_gets_the_same_id() -> None:
    line = next(generate_lines(1, seed=3))
    record = json.loads(line)
    reordered = json.dumps(dict(reversed(list(record.items()))), indent=2)
    as_ms = json.dumps({**record, "timestamp": record["timestamp"] * 1000})
    assert _id(line) == _id(reordered.replace("\n", " ")) == _id(as_ms)


def test_tool_arguments_as_text_or_object_get_the_same_id() -> None:
    record = next(r for r in map(json.loads, generate_lines(50, seed=2)) if _tool_call(r))
    call = _tool_call(record)
    as_text = json.dumps(record)
    call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    assert _id(as_text) == _id(json.dumps(record))


def test_any_change_of_content_changes_the_id() -> None:
    record = json.loads(next(generate_lines(1, seed=3)))
    ids = {
        _id(json.dumps(record)),
        _id(json.dumps({**record, "client_id": "other"})),
        _id(json.dumps({**record, "timestamp": record["timestamp"] + 1})),
        _id(json.dumps({**record, "metadata": {}})),
    }
    assert len(ids) == 4


def test_ids_are_unique_over_generated_traffic_and_stable_across_runs() -> None:
    ids = [_id(line) for line in generate_lines(2000, seed=9)]
    assert len(set(ids)) == 2000
    assert ids[:3] == [_id(line) for line in generate_lines(3, seed=9)]
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids[:10])


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": [1, {"d": 1, "c": 2}], "a": "é"}) == (
        '{"a":"é","b":[1,{"c":2,"d":1}]}'.encode()
    )


def _with_tools(tools: Any) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(next(generate_lines(1, seed=3)))
    record["request"]["tools"] = tools
    return record


_TOOL = {"type": "function", "function": {"name": "find_order", "parameters": {"type": "object"}}}
_OTHER = {"type": "function", "function": {"name": "refund", "parameters": {"type": "object"}}}


def test_the_same_tools_in_any_key_order_share_a_fingerprint() -> None:
    reordered = json.loads(json.dumps(_TOOL), object_pairs_hook=lambda p: dict(reversed(p)))
    assert list(reordered) != list(_TOOL)
    fingerprint = tools_fingerprint(_with_tools([_TOOL, _OTHER]))
    assert fingerprint == tools_fingerprint(_with_tools([reordered, _OTHER]))
    assert fingerprint is not None and len(fingerprint) == 32 and int(fingerprint, 16) >= 0


def test_different_tools_get_different_fingerprints() -> None:
    fingerprints = {
        tools_fingerprint(_with_tools(tools))
        for tools in ([_TOOL], [_OTHER], [_TOOL, _OTHER], [_OTHER, _TOOL], [])
    }
    assert len(fingerprints) == 5 and None not in fingerprints


def test_the_stored_body_carries_the_fingerprint_of_its_tools() -> None:
    record = _with_tools([_TOOL])
    stored = orjson.loads(stored_body(record))
    assert stored.pop(TOOLS_FINGERPRINT) == tools_fingerprint(record)
    assert stored == record


def test_a_record_without_a_tools_list_has_no_fingerprint() -> None:
    without = _with_tools(None)
    del without["request"]["tools"]
    for record in (without, _with_tools(None)):
        assert tools_fingerprint(record) is None
        assert orjson.loads(stored_body(record)) == record


def test_a_logged_field_of_that_name_never_passes_for_the_fingerprint() -> None:
    forged = {**_with_tools(None), TOOLS_FINGERPRINT: "forged"}
    assert TOOLS_FINGERPRINT not in orjson.loads(stored_body(forged))
    forged = {**_with_tools([_TOOL]), TOOLS_FINGERPRINT: "forged"}
    assert orjson.loads(stored_body(forged))[TOOLS_FINGERPRINT] == tools_fingerprint(forged)
    assert TOOLS_FINGERPRINT in forged  # the record itself is left as logged


def _tool_call(record: dict[str, Any]) -> Any:
    calls = record["response"]["choices"][0]["message"].get("tool_calls")
    return calls[0] if calls else None
