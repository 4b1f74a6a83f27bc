"""Every generated record is a well-formed OpenAI chat-completions log record."""

import json
from typing import Any

import pytest

from flywheel_contracts.traffic import TOOLS, WORKLOADS
from flywheel_contracts.traffic.malformed import MIN_MAX_LINE_BYTES

pytestmark = pytest.mark.unit

Record = dict[str, Any]
ROLES = {"system", "user", "assistant", "tool"}


def check_request(request: Record) -> None:
    assert isinstance(request["model"], str) and request["model"]
    messages = request["messages"]
    assert messages, "empty messages"
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
    call_ids: set[str] = set()
    for message in messages:
        assert message["role"] in ROLES
        if message["role"] == "assistant" and message.get("tool_calls"):
            call_ids |= {c["id"] for c in message["tool_calls"]}
        elif message["role"] == "tool":
            assert message["tool_call_id"] in call_ids, "tool result without its call"
            assert isinstance(json.loads(message["content"]), dict)
        else:
            assert isinstance(message["content"], str) and message["content"]
    for tool in request.get("tools", ()):
        assert tool["type"] == "function"
        parameters = tool["function"]["parameters"]
        assert parameters["type"] == "object"
        # The blueprint drops records whose tools have more than 8 properties.
        assert len(parameters["properties"]) <= 8
        assert set(parameters["required"]) <= set(parameters["properties"])


def check_response(response: Record, tool_names: set[str]) -> None:
    assert response["object"] == "chat.completion"
    assert response["id"].startswith("chatcmpl-")
    assert isinstance(response["created"], int)
    [choice] = response["choices"]
    message = choice["message"]
    assert choice["index"] == 0 and message["role"] == "assistant"
    calls = message.get("tool_calls")
    if calls:
        assert message["content"] is None and choice["finish_reason"] == "tool_calls"
        assert len({c["id"] for c in calls}) == len(calls)
        for call in calls:
            assert call["type"] == "function" and call["function"]["name"] in tool_names
            assert isinstance(json.loads(call["function"]["arguments"]), dict)
    else:
        assert isinstance(message["content"], str) and message["content"]
        assert choice["finish_reason"] == "stop"
    usage = response["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_every_record_has_the_documented_shape(sample: list[Record]) -> None:
    for record in sample:
        assert set(record) == {
            "workload_id",
            "client_id",
            "timestamp",
            "request",
            "response",
            "metadata",
        }
        workload = WORKLOADS[record["workload_id"]]
        assert isinstance(record["client_id"], str) and isinstance(record["timestamp"], int)
        request = record["request"]
        check_request(request)
        tool_names = {t["function"]["name"] for t in request.get("tools", ())}
        assert tool_names == set(workload.tools)
        check_response(record["response"], tool_names)
        assert record["response"]["model"] == request["model"]


def test_tool_workload_records_call_tools_chat_records_never_do(sample: list[Record]) -> None:
    calling = {w: 0 for w in WORKLOADS}
    for record in sample:
        calling[record["workload_id"]] += bool(
            record["response"]["choices"][0]["message"].get("tool_calls")
        )
    totals = {w: sum(r["workload_id"] == w for r in sample) for w in WORKLOADS}
    assert calling["customer-service-chat"] == 0
    assert calling["order-tools"] == totals["order-tools"]
    # The router answers small talk without a tool, rarely.
    assert (
        0.9 * totals["customer-service-router"]
        < calling["customer-service-router"]
        < totals["customer-service-router"]
    )


def test_lines_are_canonical_compact_json(sample_lines: list[str]) -> None:
    # Lines are assembled from pre-encoded fragments; they must equal a plain encoding.
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for line in sample_lines:
        assert encode(json.loads(line)) == line
        assert "\n" not in line


def test_lines_are_unique_and_well_under_the_line_limit(sample_lines: list[str]) -> None:
    assert len(set(sample_lines)) == len(sample_lines)
    assert max(len(line.encode()) for line in sample_lines) < MIN_MAX_LINE_BYTES


def test_metadata_tracks_conversations(sample: list[Record]) -> None:
    turns: dict[str, set[int]] = {}
    for record in sample:
        metadata = record["metadata"]
        users = sum(m["role"] == "user" for m in record["request"]["messages"])
        assert metadata["turn"] == users
        assert metadata["latency_ms"] > 0 and metadata["tags"]
        turns.setdefault(metadata["conversation_id"], set()).add(metadata["turn"])
    multi_turn = [t for t in turns.values() if len(t) > 1]
    assert multi_turn, "no conversation of several turns"
    assert all(t == set(range(1, max(t) + 1)) for t in multi_turn), "a turn is missing"


def test_the_tool_catalogue_has_a_dozen_typed_tools() -> None:
    assert len(TOOLS) == 12
    types = {
        p.get("format", p["type"]) if "enum" not in p else "enum"
        for t in TOOLS.values()
        for p in t["function"]["parameters"]["properties"].values()
    }
    assert types == {"string", "enum", "integer", "number", "boolean", "date", "email"}
    optional = [
        name
        for t in TOOLS.values()
        for name in t["function"]["parameters"]["properties"]
        if name not in t["function"]["parameters"]["required"]
    ]
    assert len(optional) >= 5
