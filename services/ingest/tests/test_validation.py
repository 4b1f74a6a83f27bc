"""Parsing and validation of raw lines: every reject reason, the check order, normalization."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import orjson
import pytest

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.traffic import (
    DEFAULT_MAX_LINE_BYTES,
    LINE_REASONS,
    TrafficConfig,
    generate_records,
    malformed_lines,
)
from flywheel_ingest.validation import LogRecord, Refusal, validate

pytestmark = pytest.mark.unit

LIMIT = DEFAULT_MAX_LINE_BYTES


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


def _record(**changes: Any) -> dict[str, Any]:
    """A minimal record in the blueprint's log format."""
    record: dict[str, Any] = {
        "workload_id": "order-tools",
        "client_id": "acme-support",
        "timestamp": 1736154000,
        "request": {
            "model": "meta/llama-3.3-70b-instruct",
            "messages": [
                {"role": "system", "content": "You manage orders."},
                {"role": "user", "content": "Where is order ORD-123456?"},
            ],
        },
        "response": {
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {
                                    "name": "get_order_status",
                                    "arguments": '{"order_id": "ORD-123456"}',
                                },
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        },
    }
    record.update(changes)
    return record


def _refusal(raw: bytes) -> Refusal:
    outcome = validate(raw, LIMIT)
    assert isinstance(outcome, Refusal), f"accepted: {raw[:200]!r}"
    return outcome


def _accepted(raw: bytes) -> LogRecord:
    outcome = validate(raw, LIMIT)
    assert isinstance(outcome, LogRecord), outcome
    return outcome


def test_every_generated_malformed_line_is_refused_for_its_labelled_reason() -> None:
    cases = list(malformed_lines(600, seed=4))
    wrong = []
    for line, expected in cases:
        outcome = validate(line.encode(), LIMIT)
        if not isinstance(outcome, Refusal) or outcome.reason is not expected:
            wrong.append((expected, outcome, line[:120]))
    assert wrong == []
    assert set(Counter(reason for _, reason in cases)) == LINE_REASONS
    assert set(RejectReason) - LINE_REASONS == {
        RejectReason.DUPLICATE_CALL,
        RejectReason.INCOMPLETE_CALL,
        RejectReason.UNPAIRED_EVENT,
        RejectReason.CLIENT_NOT_ALLOWED,  # decided by the intake token, not the line
    }


def test_refusals_carry_a_human_message_naming_the_problem() -> None:
    record = _record()
    del record["client_id"]
    assert _refusal(_line(record)).message == "missing required field(s): client_id"
    assert (
        "request.messages[1].role"
        in _refusal(
            _line(
                _record(request={"messages": [{"role": "user", "content": "hi"}, {"content": "x"}]})
            )
        ).message
    )


@pytest.mark.parametrize("timestamp_format", ["s", "ms", "iso", "mixed"])
def test_generated_traffic_is_accepted_in_every_timestamp_format(timestamp_format: str) -> None:
    config = TrafficConfig(timestamp_format=timestamp_format)  # type: ignore[arg-type]
    for record in generate_records(90, seed=8, config=config):
        checked = _accepted(_line(record))
        assert checked.fields["timestamp"].endswith("Z")
        assert (checked.workload_id, checked.client_id) == (
            record["workload_id"],
            record["client_id"],
        )


def test_blueprint_format_is_kept_as_logged_apart_from_the_normalized_fields() -> None:
    record = _record(metadata={"latency_ms": 812, "tags": ["web"]}, session="s-1")
    record["response"]["usage"] = {"prompt_tokens": 10, "completion_tokens": 5}
    fields = _accepted(_line(record)).fields
    assert fields["timestamp"] == "2025-01-06T09:00:00.000Z"
    call = fields["response"]["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] == {"order_id": "ORD-123456"}
    expected = json.loads(_line(record))
    expected["timestamp"] = fields["timestamp"]
    expected["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = {
        "order_id": "ORD-123456"
    }
    assert fields == expected  # metadata, extra fields, usage and model all kept


def test_tool_arguments_are_objects_whether_logged_as_text_or_object_in_any_message() -> None:
    as_object = _record()
    as_object["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = {
        "order_id": "ORD-123456"
    }
    history = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c0", "function": {"name": "f", "arguments": '{"a": [1, 2]}'}}],
    }
    as_object["request"]["messages"].append(history)
    fields = _accepted(_line(as_object)).fields
    assert fields["request"]["messages"][-1]["tool_calls"][0]["function"]["arguments"] == {
        "a": [1, 2]
    }
    text_fields = _accepted(_line(_record())).fields
    assert text_fields["response"] == fields["response"]


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ('{"order_id": "ORD-12', "is not JSON"),
        ("[1, 2]", "holds a JSON array"),
        (42, "got number"),
        ("", "is not JSON"),
        (None, "got null"),
    ],
)
def test_tool_arguments_that_are_no_object_are_refused(arguments: object, fragment: str) -> None:
    record = _record()
    record["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = (
        arguments
    )
    refusal = _refusal(_line(record))
    assert refusal.reason is RejectReason.INVALID_TOOL_ARGUMENTS
    assert fragment in refusal.message
    assert "response.choices[0].message.tool_calls[0].function.arguments" in refusal.message


def test_missing_tool_arguments_are_refused_in_request_history_too() -> None:
    record = _record()
    record["request"]["messages"].append(
        {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}
    )
    refusal = _refusal(_line(record))
    assert refusal.reason is RejectReason.INVALID_TOOL_ARGUMENTS
    assert "request.messages[2].tool_calls[0].function.arguments is missing" in refusal.message


def test_the_line_limit_is_inclusive() -> None:
    line = _line(_record())
    assert isinstance(validate(line, len(line)), LogRecord)
    refusal = validate(line, len(line) - 1)
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RejectReason.OVERSIZE


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", RejectReason.INVALID_JSON),
        (b"\xff\xfe{}", RejectReason.INVALID_JSON),
        (b'{"a": NaN}', RejectReason.INVALID_JSON),
        (b"[" * 2000 + b"]" * 2000, RejectReason.INVALID_JSON),
        (b"[]", RejectReason.NOT_AN_OBJECT),
        (b"null", RejectReason.NOT_AN_OBJECT),
        (b"{}", RejectReason.MISSING_FIELD),
    ],
)
def test_lines_that_are_no_json_object(raw: bytes, reason: RejectReason) -> None:
    assert _refusal(raw).reason is reason


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"workload_id": None}, "workload_id must be a string, got null"),
        ({"client_id": 7}, "client_id must be a string, got number"),
        ({"workload_id": ""}, "workload_id must be 1-256 characters"),
        ({"client_id": "acme support"}, "client_id must be 1-256 characters"),
        ({"workload_id": "x" * 257}, "workload_id must be 1-256 characters"),
        ({"timestamp": True}, "timestamp must be a number"),
        ({"timestamp": [1736154000]}, "timestamp must be a number"),
        ({"request": "{}"}, "request must be an object, got string"),
        ({"response": None}, "response must be an object, got null"),
    ],
)
def test_wrong_types(changes: dict[str, Any], fragment: str) -> None:
    refusal = _refusal(_line(_record(**changes)))
    assert refusal.reason is RejectReason.WRONG_TYPE
    assert fragment in refusal.message


@pytest.mark.parametrize(
    "timestamp",
    ["yesterday", "", "2025-02-30T10:00:00Z", "1969-12-31T23:59:59Z", -1, 10**20, 1e300],
)
def test_invalid_timestamps(timestamp: object) -> None:
    assert _refusal(_line(_record(timestamp=timestamp))).reason is RejectReason.INVALID_TIMESTAMP


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r["request"].update(messages=[]), RejectReason.EMPTY_MESSAGES),
        (lambda r: r["response"].update(choices=[]), RejectReason.EMPTY_CHOICES),
        (lambda r: r["request"].pop("messages"), RejectReason.NOT_OPENAI_FORMAT),
        (lambda r: r["request"].update(messages="hello"), RejectReason.NOT_OPENAI_FORMAT),
        (lambda r: r["request"].update(messages=["hello"]), RejectReason.NOT_OPENAI_FORMAT),
        (
            lambda r: r["request"].update(messages=[{"role": "human", "content": "hi"}]),
            RejectReason.NOT_OPENAI_FORMAT,
        ),
        (
            lambda r: r["request"].update(messages=[{"role": "user", "content": 5}]),
            RejectReason.NOT_OPENAI_FORMAT,
        ),
        (
            lambda r: r["request"].update(messages=[{"role": ["user"], "content": "hi"}]),
            RejectReason.NOT_OPENAI_FORMAT,
        ),
        (lambda r: r["request"].update(tools={"a": 1}), RejectReason.NOT_OPENAI_FORMAT),
        (
            lambda r: r["request"].update(tools=[{"type": "function", "function": {}}]),
            RejectReason.NOT_OPENAI_FORMAT,
        ),
        (lambda r: r["response"].pop("choices"), RejectReason.NOT_OPENAI_FORMAT),
        (
            lambda r: r["response"].update(choices=[{"text": "Sure."}]),
            RejectReason.NOT_OPENAI_FORMAT,
        ),
        (
            lambda r: r["response"]["choices"][0]["message"].update(tool_calls={"x": 1}),
            RejectReason.NOT_OPENAI_FORMAT,
        ),
        (
            lambda r: r["response"]["choices"][0]["message"].update(
                tool_calls=[{"function": {"arguments": "{}"}}]
            ),
            RejectReason.NOT_OPENAI_FORMAT,
        ),
    ],
)
def test_chat_completion_shape(mutate: Any, reason: RejectReason) -> None:
    record = _record()
    mutate(record)
    assert _refusal(_line(record)).reason is reason


def test_accepted_shapes_beyond_plain_text() -> None:
    record = _record()
    record["request"]["messages"].append(
        {"role": "user", "content": [{"type": "text", "text": "and this one?"}]}
    )
    record["request"]["tools"] = [
        {"type": "function", "function": {"name": "get_order_status"}},
        {"type": "web_search"},
    ]
    del record["response"]["choices"][0]["message"]["role"]  # some providers leave it out
    _accepted(_line(record))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        # oversize beats broken JSON
        (lambda line: line[:-1] + b" " * LIMIT, RejectReason.OVERSIZE),
        # a missing field beats a wrong type
        (
            lambda line: _line(
                {**{k: v for k, v in _record().items() if k != "client_id"}, "workload_id": 1}
            ),
            RejectReason.MISSING_FIELD,
        ),
        # a wrong type beats an invalid timestamp
        (lambda line: _line(_record(timestamp="never", request=[])), RejectReason.WRONG_TYPE),
        # an invalid timestamp beats empty messages
        (
            lambda line: _line(_record(timestamp="never", request={"messages": []})),
            RejectReason.INVALID_TIMESTAMP,
        ),
        # empty messages beat empty choices
        (
            lambda line: _line(_record(request={"messages": []}, response={"choices": []})),
            RejectReason.EMPTY_MESSAGES,
        ),
        # empty choices beat any other shape problem
        (
            lambda line: _line(_record(request={"messages": "hi"}, response={"choices": []})),
            RejectReason.EMPTY_CHOICES,
        ),
        # a shape problem beats bad tool arguments
        (
            lambda line: _line(
                _record(request={"messages": [{"role": "robot"}]})
                | {
                    "response": {
                        "choices": [
                            {
                                "message": {
                                    "tool_calls": [{"function": {"name": "f", "arguments": 1}}]
                                }
                            }
                        ]
                    }
                }
            ),
            RejectReason.NOT_OPENAI_FORMAT,
        ),
    ],
)
def test_the_first_failed_check_decides(mutate: Any, reason: RejectReason) -> None:
    assert _refusal(mutate(_line(_record()))).reason is reason


def test_normalized_record_serializes_back_to_json() -> None:
    fields = _accepted(_line(_record(metadata={"big": 10**30}))).fields
    assert orjson.loads(orjson.dumps(fields))["workload_id"] == "order-tools"


def test_an_answer_claiming_tool_calls_without_any_is_refused() -> None:
    record = _record()
    choice = record["response"]["choices"][0]
    choice["message"] = {"role": "assistant", "content": "Checking.", "tool_calls": []}
    refusal = _refusal(_line(record))
    assert refusal.reason is RejectReason.TOOL_CALLS_MISSING
    assert refusal.message == (
        "response.choices[0].finish_reason is tool_calls but the message carries no tool call"
    )


@pytest.mark.parametrize("content", [None, "", " \n", [], [{"type": "text", "text": "  "}]])
def test_an_empty_assistant_answer_is_refused(content: Any) -> None:
    record = _record()
    choice = record["response"]["choices"][0]
    choice["message"], choice["finish_reason"] = {"role": "assistant", "content": content}, "stop"
    refusal = _refusal(_line(record))
    assert refusal.reason is RejectReason.EMPTY_RESPONSE
    assert "neither content nor tool calls" in refusal.message


def test_empty_assistant_turns_in_the_prompt_history_are_kept() -> None:
    record = _record()
    record["request"]["messages"].insert(1, {"role": "assistant", "content": ""})
    assert _accepted(_line(record)).fields["request"]["messages"][1] == {
        "role": "assistant",
        "content": "",
    }
