"""NeMo Agent Toolkit's Data Flywheel records become Flywheel records.

The fixtures are what NAT 1.9.0's real exporter sent to a capture server for a real NAT
workflow (`tools/producers/nat_dfw.py --fixtures`, which regenerates them); a few tests change
one field of such a record to reach what this run of NAT did not produce.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.traffic import generate_lines
from flywheel_ingest.config import NatSettings, ProducerSettings
from flywheel_ingest.producers import Format, Untranslatable
from flywheel_ingest.producers.nat import PRODUCER, to_record
from flywheel_ingest.producers.translate import verdict
from flywheel_ingest.validation import LogRecord, Refusal

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "producers" / "nat"
SETTINGS = ProducerSettings(nat=NatSettings(workflow_workload_id="support-agent"))
LIMIT = 1_000_000


def exported() -> list[dict[str, Any]]:
    """Every document NAT put in its bulk requests, in request order."""
    documents: list[dict[str, Any]] = []
    for path in sorted(FIXTURES.glob("bulk-*.ndjson")):
        lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
        for action, document in zip(lines[::2], lines[1::2], strict=True):
            assert next(iter(json.loads(action))) == "index"
            documents.append(json.loads(document))
    return documents


def asking(question: str, *, answered: bool) -> dict[str, Any]:
    """The exported call of the run that asked `question`: its first (tool-calling) call, or the
    one that answered after the tool's result."""
    for document in exported():
        messages = document["request"]["messages"]
        has_tool_result = any(m["role"] == "tool" for m in messages)
        if messages[1]["content"] == question and has_tool_result == answered:
            return document
    raise AssertionError(f"no exported call for {question!r}")


def outcome(document: dict[str, Any]) -> LogRecord | Refusal:
    return verdict(orjson.dumps(document), Format.NAT, SETTINGS, LIMIT)


def test_the_fixtures_hold_every_call_nat_exported() -> None:
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    documents = exported()
    assert len(documents) == manifest["documents"] == manifest["llm_calls"] == 11
    assert {d["contract_version"] for d in documents} == {"1.0"}
    assert Counter(d["workload_id"] for d in documents) == {"<workflow>": 10, "summarize_text": 1}


def test_the_workflow_placeholder_becomes_the_configured_workload_and_is_kept_in_metadata() -> None:
    record = to_record(asking("Hello! Who are you?", answered=False), SETTINGS)
    assert record["workload_id"] == "support-agent"
    assert record["metadata"] == {
        "producer": PRODUCER,
        "contract_version": "1.0",
        "nat_workload_id": "<workflow>",
    }
    assert "contract_version" not in record and "error_details" not in record


def test_a_named_function_keeps_its_workload_id() -> None:
    summary = next(d for d in exported() if d["workload_id"] == "summarize_text")
    record = to_record(summary, SETTINGS)
    assert record["workload_id"] == "summarize_text"
    assert "nat_workload_id" not in record["metadata"]


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        ("<agent>", "support-agent"),
        ("<a b>", "<a b>"),
        ("chat", "chat"),
        ("a<b>c", "support-agent"),
    ],
)
def test_only_ids_invalid_for_their_angle_brackets_are_replaced(
    workload: str, expected: str
) -> None:
    document = {**asking("Hello! Who are you?", answered=False), "workload_id": workload}
    assert to_record(document, SETTINGS)["workload_id"] == expected


def test_a_plain_answer_is_stored_with_openai_usage_and_without_nats_null_parameters() -> None:
    document = asking("Hello! Who are you?", answered=False)
    result = outcome(document)
    assert isinstance(result, LogRecord), result
    request, response = result.fields["request"], result.fields["response"]
    assert set(request) == {"model", "messages", "tools"}  # temperature/max_tokens were null
    assert request["model"] == "stub-llm"
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    tokens = document["response"]["usage"]["token_usage"]
    assert response["usage"] == {
        "prompt_tokens": tokens["prompt_tokens"],
        "completion_tokens": tokens["completion_tokens"],
        "total_tokens": tokens["total_tokens"],
    }
    assert (
        response["choices"][0]["message"]["content"] == "I am a helpful assistant. How can I help?"
    )
    assert result.client_id == "nat-fixtures"


def test_the_call_after_a_tool_keeps_the_tool_message_and_its_call_id() -> None:
    result = outcome(asking("What is the weather in Paris?", answered=True))
    assert isinstance(result, LogRecord), result
    tool = result.fields["request"]["messages"][-1]
    assert tool == {
        "role": "tool",
        "content": "Sunny, 21 degrees celsius in Paris.",
        "tool_call_id": tool["tool_call_id"],
    }
    assert tool["tool_call_id"].startswith("call_get_weather_")


def test_nats_tool_calling_answers_arrive_without_their_calls_and_are_rejected_as_such() -> None:
    """NAT 1.9's converter reads tool calls where langchain-openai 1.x no longer puts them."""
    calling = asking("What is the weather in Paris?", answered=False)
    assert calling["response"]["choices"][0] == {
        "message": {"role": "assistant", "content": "", "tool_calls": None},
        "finish_reason": "tool_calls",
        "index": 0,
    }
    result = outcome(calling)
    assert isinstance(result, Refusal)
    assert result.reason is RejectReason.TOOL_CALLS_MISSING


def test_every_exported_call_is_a_record_or_an_explained_rejection() -> None:
    outcomes = [outcome(document) for document in exported()]
    kinds = Counter(o.reason.value if isinstance(o, Refusal) else "stored" for o in outcomes)
    # One tool-calling call per question that used a tool (5), each lost its calls in NAT.
    assert kinds == {"stored": 6, RejectReason.TOOL_CALLS_MISSING.value: 5}


def test_nat_leaves_a_tool_of_more_than_eight_parameters_out_of_the_request() -> None:
    offered = json.loads((FIXTURES / "llm-1.json").read_text())["tools"]
    assert [t["function"]["name"] for t in offered] == [
        "get_weather",
        "register_user",
        "summarize_text",
    ]
    assert len(offered[1]["function"]["parameters"]["properties"]) == 9
    record = to_record(asking("Register Ada Lovelace as a new customer.", answered=True), SETTINGS)
    assert [t["function"]["name"] for t in record["request"]["tools"]] == [
        "get_weather",
        "summarize_text",
    ]


def test_langchain_roles_are_normalized_as_nat_does() -> None:
    document = copy.deepcopy(asking("What is the weather in Paris?", answered=True))
    messages = document["request"]["messages"]
    messages[1]["role"] = "human"
    messages[2]["role"] = "ai"
    messages.insert(2, {"role": "chain", "content": "routing"})
    record = to_record(document, SETTINGS)
    roles = [m["role"] for m in record["request"]["messages"]]
    assert roles == ["system", "user", "function", "assistant", "tool"]


def test_tool_calls_in_nats_shape_are_kept_as_given() -> None:
    document = copy.deepcopy(asking("What is the weather in Paris?", answered=False))
    # NAT's ToolCall: a function with arguments as an object, no id.
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}, "type": "function"}
    document["response"]["choices"][0]["message"]["tool_calls"] = [call]
    result = outcome(document)
    assert isinstance(result, LogRecord), result
    assert result.fields["response"]["choices"][0]["message"]["tool_calls"] == [call]


@pytest.mark.parametrize(
    ("change", "reason", "message"),
    [
        (
            lambda d: d.pop("request"),
            RejectReason.INCOMPLETE_CALL,
            "the NAT record has no request (NAT builds it from the LLM_START span's input messages)",
        ),
        (
            lambda d: d.pop("response"),
            RejectReason.INCOMPLETE_CALL,
            "the NAT record has no response (NAT builds it from the LLM_END span's chat responses)",
        ),
        (
            lambda d: d["request"].update(messages=None),
            RejectReason.INCOMPLETE_CALL,
            "request.messages is missing: NAT exported the call without its prompt",
        ),
        (
            lambda d: d["response"].update(choices=None),
            RejectReason.INCOMPLETE_CALL,
            "response.choices is missing: NAT exported the call without its answer",
        ),
        (
            lambda d: d.update(request="hello"),
            RejectReason.WRONG_TYPE,
            "the NAT record's request must be an object",
        ),
    ],
)
def test_a_record_without_its_call_is_refused_with_a_precise_reason(
    change: Any, reason: RejectReason, message: str
) -> None:
    document = copy.deepcopy(asking("Hello! Who are you?", answered=False))
    change(document)
    with pytest.raises(Untranslatable) as refused:
        to_record(document, SETTINGS)
    assert (refused.value.reason, refused.value.message) == (reason, message)
    result = outcome(document)
    assert isinstance(result, Refusal)
    assert (result.reason, result.message) == (reason, f"nat: {message}")


def test_a_nat_record_without_a_client_is_refused_as_missing_it() -> None:
    document = copy.deepcopy(asking("Hello! Who are you?", answered=False))
    del document["client_id"]
    result = outcome(document)
    assert isinstance(result, Refusal)
    assert result.reason is RejectReason.MISSING_FIELD
    assert "client_id" in result.message


def test_error_details_when_nat_sets_them_move_into_metadata() -> None:
    document = {**asking("Hello! Who are you?", answered=False), "error_details": "timeout"}
    record = to_record(document, SETTINGS)
    assert record["metadata"]["error_details"] == "timeout"
    assert "error_details" not in record


def test_a_plain_flywheel_record_passes_through_unchanged() -> None:
    line = next(iter(generate_lines(1, seed=3)))
    record = json.loads(line)
    assert to_record(copy.deepcopy(record), SETTINGS) == record
    through_nat = outcome(record)
    as_record = verdict(line.encode(), Format.RECORD, SETTINGS, LIMIT)
    assert isinstance(through_nat, LogRecord) and isinstance(as_record, LogRecord)
    assert through_nat.fields == as_record.fields
