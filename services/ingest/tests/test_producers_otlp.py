"""OTLP LLM spans to records: on real exports (fixtures made by `tools/producers/nat_otel.py` and
`tools/producers/relay_otlp.py`), on each convention's variants, and the identity rule."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import OtlpSettings, ProducerSettings
from flywheel_ingest.producers import Format
from flywheel_ingest.producers.otlp import to_identifier
from flywheel_ingest.producers.otlp.decode import Encoding, decode_request, span_items
from flywheel_ingest.producers.translate import verdict
from flywheel_ingest.validation import LogRecord, Refusal

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "producers" / "otlp"
LIMIT = 900_000
SETTINGS = ProducerSettings()
START_NS = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z


def outcome(item: bytes, settings: ProducerSettings = SETTINGS) -> LogRecord | Refusal:
    return verdict(item, Format.OTLP_SPAN, settings, LIMIT)


def record(item: bytes, settings: ProducerSettings = SETTINGS) -> dict[str, Any]:
    result = outcome(item, settings)
    assert isinstance(result, LogRecord), result
    return result.fields


def refusal(item: bytes, settings: ProducerSettings = SETTINGS) -> Refusal:
    result = outcome(item, settings)
    assert isinstance(result, Refusal), result
    return result


# -- the real exports ------------------------------------------------------------------------


def exported(*patterns: str) -> Iterator[tuple[bytes, Encoding]]:
    for pattern in patterns:
        for path in sorted(FIXTURES.glob(pattern)):
            if path.suffix == ".jsonl":
                yield from ((line, Encoding.JSON) for line in path.read_bytes().splitlines())
            else:
                yield path.read_bytes(), Encoding.PROTOBUF


def items_of(*patterns: str) -> tuple[list[bytes], int]:
    items: list[bytes] = []
    skipped = 0
    for body, encoding in exported(*patterns):
        found = span_items(decode_request(body, encoding))
        items.extend(found.items)
        skipped += found.skipped
    return items, skipped


def records_of(*patterns: str) -> list[dict[str, Any]]:
    return [
        result.fields
        for result in map(outcome, items_of(*patterns)[0])
        if isinstance(result, LogRecord)
    ]


def asking(records: Sequence[dict[str, Any]], question: str, *, turns: int) -> dict[str, Any]:
    """The record whose prompt asks `question` and holds `turns` messages."""
    (found,) = [
        r
        for r in records
        if len(r["request"]["messages"]) == turns
        and any(m.get("content") == question for m in r["request"]["messages"])
    ]
    return found


NAT_MANIFEST: dict[str, Any] = orjson.loads((FIXTURES / "nat" / "manifest.json").read_bytes())
NAT_RECORDS = records_of("nat/*.pb")
RELAY_MANIFEST: dict[str, Any] = orjson.loads((FIXTURES / "relay" / "manifest.json").read_bytes())
NAT_SYSTEM = "You are a weather assistant. Use the tools when they help."


def test_every_llm_span_nat_exported_is_an_item_and_no_other_span_is() -> None:
    items, skipped = items_of("nat/*.pb")
    assert len(items) == NAT_MANIFEST["llm_spans"] == 8
    assert skipped == NAT_MANIFEST["spans"] - NAT_MANIFEST["llm_spans"]


def test_a_nat_call_after_a_tool_keeps_the_history_the_tools_and_the_answer() -> None:
    found = asking(NAT_RECORDS, "What is the weather in Paris?", turns=4)
    system, user, assistant, tool = found["request"]["messages"]
    assert (system, user) == (
        {"role": "system", "content": NAT_SYSTEM},
        {"role": "user", "content": "What is the weather in Paris?"},
    )
    (call,) = assistant["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert tool == {
        "role": "tool",
        "content": "Sunny and 21 C in Paris.",
        "tool_call_id": call["id"],
    }
    (weather,) = found["request"]["tools"]
    # NAT dumps the schema's `type` as `type_`; the record says `type` again.
    assert weather["function"]["name"] == "get_weather"
    assert weather["function"]["parameters"]["type"] == "object"
    assert "type_" not in weather["function"]["parameters"]
    assert found["request"]["model"] == "stub-chat-model"
    (choice,) = found["response"]["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "According to the weather service: Sunny and 21 C in Paris.",
    }
    assert choice["finish_reason"] == "stop"
    assert found["response"]["usage"]["completion_tokens"] == 9
    assert (found["workload_id"], found["client_id"]) == (
        "nat-weather-assistant",
        "nat-otel-driver",
    )
    assert found["metadata"] | {"trace_id": "", "span_id": "", "nat_workflow_run_id": ""} == {
        "producer": "otlp",
        "convention": "input.value",
        "trace_id": "",
        "span_id": "",
        "parent_span_id": found["metadata"]["parent_span_id"],
        "span_name": "stub-chat-model",
        "service_name": "nat-weather-assistant",
        "instrumentation_scope": "nat",
        "session_id": "conversation-0",
        "nat_function": "<workflow>",
        "nat_workflow_run_id": "",
    }


@pytest.mark.parametrize(
    ("question", "system"),
    [
        ("What is the weather in Paris?", True),  # NAT function calling the model
        ("What is the weather in Oslo? (stream)", True),  # the same, streamed
        ("What is the weather in Berlin?", False),  # NAT's own tool_calling_agent, streamed
    ],
)
def test_tool_calls_nat_writes_only_as_a_python_repr_in_output_value_are_recovered(
    question: str, system: bool
) -> None:
    found = asking(NAT_RECORDS, question, turns=2 if system else 1)
    city = question.split("in ", 1)[1].split("?", 1)[0]
    (choice,) = found["response"]["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": {"city": city}}


def test_a_nat_call_whose_tool_arguments_were_not_json_arrives_without_calls_and_is_rejected() -> (
    None
):
    refused = [r for r in map(outcome, items_of("nat/*.pb")[0]) if isinstance(r, Refusal)]
    assert [r.reason for r in refused] == [RejectReason.TOOL_CALLS_MISSING]


def test_relay_gen_ai_spans_become_records_with_the_conventions_names_mapped() -> None:
    found = asking(records_of("relay/relay-gen_ai-*.pb"), "What is the weather in Paris?", turns=2)
    assert found["request"] == {
        "model": "stub-chat-model",
        "messages": [
            {"role": "system", "content": "You are a weather assistant."},
            {"role": "user", "content": "What is the weather in Paris?"},
        ],
        # Relay's gen_ai exporter writes a tool's name and type only.
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        "temperature": 0.2,
    }
    (choice,) = found["response"]["choices"]
    assert choice == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        "finish_reason": "tool_calls",  # the conventions' `tool_call`
    }
    assert found["response"]["id"] == "chatcmpl-relay-1"
    assert found["response"]["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 11,
        "total_tokens": 41,
    }
    assert (found["workload_id"], found["client_id"]) == (
        "relay-weather-agent",
        "relay-otlp-driver",
    )
    assert found["metadata"]["convention"] == "gen_ai"


def test_relay_tool_responses_become_tool_messages_with_their_call_id() -> None:
    found = asking(records_of("relay/relay-gen_ai-*.pb"), "What is the weather in Paris?", turns=4)
    assert found["request"]["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": '{"celsius": 21, "city": "Paris", "forecast": "sunny"}',
        },
    ]


@pytest.mark.parametrize("flavour", ["gen_ai", "openinference", "full"])
def test_every_relay_llm_span_is_a_record_or_an_explained_rejection(flavour: str) -> None:
    items, skipped = items_of(f"relay/relay-{flavour}-*.pb")
    export = RELAY_MANIFEST["exports"][flavour]
    total = sum(request["spans"] for request in export["requests"])
    assert len(items) == export["llm_calls"] == 5
    assert skipped == total - len(items)  # the tool and the two agents
    outcomes = [outcome(item) for item in items]
    refused = [o for o in outcomes if isinstance(o, Refusal)]
    assert len(refused) == 1  # the call whose provider failed
    assert refused[0].reason is RejectReason.INCOMPLETE_CALL
    assert "carries no output (status ERROR 'internal error: ConnectionError" in refused[0].message


def test_relay_openinference_spans_read_their_complete_tools_and_verbatim_response() -> None:
    found = asking(
        records_of("relay/relay-openinference-*.pb"), "What is the weather in Paris?", turns=4
    )
    (tool,) = found["request"]["tools"]
    assert tool["function"]["description"] == "Current weather of a city."
    assert tool["function"]["parameters"]["required"] == ["city"]
    # Relay's OpenInference flavour leaves a history turn's tool calls out.
    assert found["request"]["messages"][2] == {"role": "assistant", "content": None}
    (choice,) = found["response"]["choices"]
    assert choice["finish_reason"] == "stop"  # the response's own, not `llm.finish_reason`
    assert found["metadata"]["convention"] == "openinference"


def test_relay_full_flavour_spans_are_read_from_the_request_and_response_as_sent() -> None:
    found = asking(records_of("relay/relay-full-*.pb"), "What is the weather in Paris?", turns=4)
    assert found["request"]["messages"][2]["tool_calls"][0]["id"] == "call_1"
    assert found["request"]["tools"][0]["function"]["parameters"]["type"] == "object"
    assert found["response"]["choices"][0]["message"]["content"].startswith("According to")
    assert found["metadata"]["convention"] == "openai"


def test_relay_otlp_json_lines_make_the_same_records_as_its_protobuf_export() -> None:
    def calls(records: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
        return sorted(
            (orjson.dumps(r["request"]), orjson.dumps(r["response"]["choices"])) for r in records
        )

    from_json = records_of("relay/relay-gen_ai.jsonl")
    assert len(from_json) == 4
    assert calls(from_json) == calls(records_of("relay/relay-gen_ai-*.pb"))


# -- conventions, span by span ---------------------------------------------------------------


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value)}}
    return {"stringValue": value}


def key_values(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in attributes.items()]


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def span_item(
    attributes: Mapping[str, Any],
    *,
    resource: Mapping[str, Any] | None = None,
    events: Sequence[tuple[str, Mapping[str, Any]]] = (),
    status: Mapping[str, Any] | None = None,
) -> bytes:
    span: dict[str, Any] = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "eee19b7ec3c1b173",
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": str(START_NS + 900_000_000),
        "attributes": key_values(attributes),
        "events": [{"name": name, "attributes": key_values(attrs)} for name, attrs in events],
    }
    if status is not None:
        span["status"] = status
    item = {
        "resource": {
            "attributes": key_values(
                {"service.name": "shop-assistant", "service.namespace": "acme"}
                if resource is None
                else resource
            )
        },
        "scopeSpans": [{"scope": {"name": "test-instrumentation"}, "spans": [span]}],
    }
    return orjson.dumps(item)


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
OPENAI_WEATHER_TOOL = {
    "type": "function",
    "function": {key: value for key, value in WEATHER_TOOL.items() if key != "type"},
}


def test_gen_ai_structured_messages_map_parts_to_openai_messages() -> None:
    found = record(
        span_item(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.request.max_tokens": 200,
                "gen_ai.system_instructions": json_text([{"type": "text", "content": "Be brief."}]),
                "gen_ai.tool.definitions": json_text([WEATHER_TOOL]),
                "gen_ai.input.messages": json_text(
                    [
                        {
                            "role": "user",
                            "parts": [
                                {"type": "text", "content": "What is on this photo?"},
                                {"type": "uri", "modality": "image", "uri": "https://x/y.png"},
                            ],
                        },
                        {
                            "role": "assistant",
                            "parts": [
                                {
                                    "type": "tool_call",
                                    "id": "c1",
                                    "name": "get_weather",
                                    "arguments": {"city": "Oslo"},
                                }
                            ],
                        },
                        {
                            "role": "tool",
                            "parts": [
                                {"type": "tool_call_response", "id": "c1", "response": "7 C"}
                            ],
                        },
                    ]
                ),
                "gen_ai.output.messages": json_text(
                    [
                        {
                            "role": "assistant",
                            "finish_reason": "tool_call",
                            "parts": [
                                {
                                    "type": "tool_call",
                                    "id": "c2",
                                    "name": "get_weather",
                                    "arguments": '{"city": "Bergen"}',
                                }
                            ],
                        }
                    ]
                ),
                "gen_ai.response.id": "resp-9",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 50,
                "gen_ai.usage.output_tokens": 7,
            }
        )
    )
    assert found["request"] == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is on this photo?"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "7 C"},
        ],
        "tools": [OPENAI_WEATHER_TOOL],
        "max_tokens": 200,
    }
    assert found["response"] == {
        "id": "resp-9",
        "object": "chat.completion",
        "created": START_NS // 1_000_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c2",
                            "type": "function",
                            # The string the producer gave, normalized by validation.
                            "function": {"name": "get_weather", "arguments": {"city": "Bergen"}},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57},
    }
    assert found["timestamp"] == "2026-01-01T00:00:00.123Z"


def test_gen_ai_messages_recorded_on_the_operation_details_event_are_read() -> None:
    found = record(
        span_item(
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"},
            events=[
                (
                    "gen_ai.client.inference.operation.details",
                    {
                        "gen_ai.input.messages": json_text(
                            [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
                        ),
                        "gen_ai.output.messages": json_text(
                            [
                                {
                                    "role": "assistant",
                                    "finish_reason": "stop",
                                    "parts": [{"type": "text", "content": "Hello"}],
                                }
                            ]
                        ),
                    },
                )
            ],
        )
    )
    assert found["request"]["messages"] == [{"role": "user", "content": "Hi"}]
    assert found["response"]["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}


def test_gen_ai_indexed_prompt_and_completion_attributes_are_read() -> None:
    found = record(
        span_item(
            {
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.request.temperature": 0.3,
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "Be kind.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "Weather in Rome?",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.finish_reason": "tool_calls",
                "gen_ai.completion.0.tool_calls.0.id": "call_9",
                "gen_ai.completion.0.tool_calls.0.name": "get_weather",
                "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Rome"}',
                "llm.request.functions.0.name": "get_weather",
                "llm.request.functions.0.description": "Current weather",
                "llm.request.functions.0.parameters": json_text(WEATHER_TOOL["parameters"]),
                "gen_ai.usage.prompt_tokens": 12,
                "gen_ai.usage.completion_tokens": 4,
            }
        )
    )
    assert found["request"] == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Weather in Rome?"},
        ],
        "tools": [OPENAI_WEATHER_TOOL],
        "temperature": 0.3,
    }
    (choice,) = found["response"]["choices"]
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Rome"}},
        }
    ]
    assert choice["finish_reason"] == "tool_calls"
    assert found["response"]["usage"]["total_tokens"] == 16
    assert found["metadata"]["convention"] == "gen_ai.prompt"


def test_gen_ai_message_events_and_choice_events_are_read() -> None:
    found = record(
        span_item(
            {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"},
            events=[
                ("gen_ai.system.message", {"content": "Be kind."}),
                ("gen_ai.user.message", {"content": "Weather in Rome?"}),
                (
                    "gen_ai.assistant.message",
                    {
                        "tool_calls": json_text(
                            [
                                {
                                    "id": "c1",
                                    "type": "function",
                                    "function": {"name": "get_weather", "arguments": "{}"},
                                }
                            ]
                        )
                    },
                ),
                ("gen_ai.tool.message", {"content": "18 C", "id": "c1"}),
                (
                    "gen_ai.choice",
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "18 C in Rome."},
                    },
                ),
            ],
        )
    )
    assert found["request"]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Weather in Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {}},
                }
            ],
        },
        {"role": "tool", "content": "18 C", "tool_call_id": "c1"},
    ]
    assert found["response"]["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "18 C in Rome."},
            "finish_reason": "stop",
        }
    ]


def test_openinference_flattened_messages_tools_and_parameters_are_read() -> None:
    found = record(
        span_item(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "llama-3.1-8b",
                "llm.invocation_parameters": json_text(
                    {"temperature": 0.1, "max_tokens": 64, "stream": True}
                ),
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.contents.0.message_content.type": "text",
                "llm.input_messages.0.message.contents.0.message_content.text": "What is this?",
                "llm.input_messages.0.message.contents.1.message_content.type": "image",
                "llm.input_messages.0.message.contents.1.message_content.image.image.url": "data:,",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": "t1",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{}",
                "llm.tools.0.tool.json_schema": json_text(OPENAI_WEATHER_TOOL),
                "llm.token_count.prompt": 30,
                "llm.token_count.completion": 5,
                "llm.token_count.total": 35,
                "llm.finish_reason": "tool_use",
            }
        )
    )
    assert found["request"] == {
        "model": "llama-3.1-8b",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                ],
            }
        ],
        "tools": [OPENAI_WEATHER_TOOL],
        "temperature": 0.1,
        "max_tokens": 64,
    }
    (choice,) = found["response"]["choices"]
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": {}}
    assert choice["finish_reason"] == "tool_calls"
    assert found["response"]["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 5,
        "total_tokens": 35,
    }


def test_an_openai_request_and_response_in_input_and_output_value_are_taken_whole() -> None:
    request = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [OPENAI_WEATHER_TOOL],
        "tool_choice": "auto",
        "stream": False,
    }
    response = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hey"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    found = record(
        span_item(
            {
                "openinference.span.kind": "LLM",
                "input.value": json_text(request),
                "input.mime_type": "application/json",
                # Flattened copies of the same call: the whole request wins.
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "Hi",
                "output.value": json_text(response),
            }
        )
    )
    assert found["request"] == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [OPENAI_WEATHER_TOOL],
        "tool_choice": "auto",
    }
    assert found["response"]["choices"] == response["choices"]
    assert found["response"]["usage"] == response["usage"]
    assert found["response"]["id"] == "chatcmpl-1"
    assert found["metadata"]["convention"] == "openai"


def test_plain_text_input_and_output_values_are_a_user_prompt_and_an_answer() -> None:
    found = record(
        span_item(
            {
                "openinference.span.kind": "LLM",
                "input.value": "Tell me a joke",
                "output.value": "No.",
            }
        )
    )
    assert found["request"]["messages"] == [{"role": "user", "content": "Tell me a joke"}]
    assert found["response"]["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "No."}, "finish_reason": None}
    ]


def test_gen_ai_attributes_are_preferred_to_openinference_ones_on_the_same_span() -> None:
    found = record(
        span_item(
            {
                "gen_ai.operation.name": "chat",
                "openinference.span.kind": "LLM",
                "gen_ai.input.messages": json_text(
                    [{"role": "user", "parts": [{"type": "text", "content": "from gen_ai"}]}]
                ),
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "from openinference",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "answer",
            }
        )
    )
    assert found["request"]["messages"] == [{"role": "user", "content": "from gen_ai"}]
    assert found["response"]["choices"][0]["message"]["content"] == "answer"


def test_broken_tool_arguments_are_kept_as_given_and_refused_by_validation() -> None:
    refused = refusal(
        span_item(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": json_text(
                    [{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}]
                ),
                "gen_ai.output.messages": json_text(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {
                                    "type": "tool_call",
                                    "id": "c1",
                                    "name": "get_weather",
                                    "arguments": '{"city": "Ro',
                                }
                            ],
                        }
                    ]
                ),
            }
        )
    )
    assert refused.reason is RejectReason.INVALID_TOOL_ARGUMENTS


def test_a_python_expression_after_nats_tool_calls_marker_is_never_run() -> None:
    found = record(
        span_item(
            {
                "nat.event_type": "LLM_START",
                "input.value": json_text([{"type": "human", "content": "Hi"}]),
                "output.value": "Sure.\n\nTool calls: __import__('os').system('exit 3')",
            }
        )
    )
    (choice,) = found["response"]["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Sure.\n\nTool calls: __import__('os').system('exit 3')",
    }


@pytest.mark.parametrize(
    ("attributes", "missing"),
    [
        (
            {"gen_ai.operation.name": "chat", "gen_ai.output.messages": "[]"},
            "carries no request messages: none of gen_ai.input.messages, gen_ai.prompt.*",
        ),
        (
            {"openinference.span.kind": "LLM", "input.value": "Hi"},
            "carries no output: none of gen_ai.output.messages, gen_ai.completion.*",
        ),
    ],
)
def test_a_span_without_its_request_or_output_is_an_incomplete_call(
    attributes: dict[str, Any], missing: str
) -> None:
    refused = refusal(span_item(attributes))
    assert refused.reason is RejectReason.INCOMPLETE_CALL
    assert refused.message.startswith(f"otlp-span: LLM span 'chat gpt-4o' {missing}")


def test_an_item_that_is_not_a_resource_spans_of_one_span_is_refused() -> None:
    refused = refusal(orjson.dumps({"resource": {}, "scopeSpans": []}))
    assert refused.reason is RejectReason.WRONG_TYPE
    assert "scopeSpans holds one scope" in refused.message


def test_an_item_nested_too_deeply_to_read_is_refused_not_crashed_on() -> None:
    key = "llm.input_messages." + ".".join(["0"] * 5000)
    refused = refusal(span_item({"openinference.span.kind": "LLM", key: "x"}))
    assert (refused.reason, refused.message) == (
        RejectReason.WRONG_TYPE,
        "otlp-span: the item nests too deeply to be read",
    )


def test_json_in_output_value_that_no_reader_understands_is_no_answer() -> None:
    refused = refusal(
        span_item(
            {
                "openinference.span.kind": "LLM",
                "input.value": "Tell me a joke",
                "output.value": json_text({"error": {"message": "rate limited"}, "status": 429}),
            }
        )
    )
    assert refused.reason is RejectReason.INCOMPLETE_CALL
    assert refused.message == (
        "otlp-span: LLM span 'chat gpt-4o' carries no output: none of gen_ai.output.messages, "
        "gen_ai.completion.*, gen_ai.choice events, llm.output_messages.*, output.value; "
        "output.value holds JSON that is no answer: an object with keys error, status"
    )


def test_a_json_array_in_output_value_that_is_no_message_list_is_no_answer() -> None:
    refused = refusal(
        span_item({"openinference.span.kind": "LLM", "input.value": "Hi", "output.value": "[1, 2]"})
    )
    assert refused.reason is RejectReason.INCOMPLETE_CALL
    assert refused.message.endswith(
        "output.value holds JSON that is no answer: an array of length 2"
    )


def test_request_parameters_and_tools_come_only_from_an_input_value_that_is_an_openai_request() -> (
    None
):
    found = record(
        span_item(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "llama-3.1-8b",
                # An agent's own input, not the model's request.
                "input.value": json_text(
                    {"user": "alice", "n": 3, "model": "planner", "tools": [{"name": "crm"}]}
                ),
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "Hi",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Hello",
            }
        )
    )
    assert found["request"] == {
        "model": "llama-3.1-8b",
        "messages": [{"role": "user", "content": "Hi"}],
    }


CAPTURE_OFF_TEXT = (
    "its GenAI message events carry no content: content capture appears to be off "
    "(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true in the instrumented application "
    "records it)"
)


@pytest.mark.parametrize(
    "events",
    [
        [
            ("gen_ai.system.message", {}),
            ("gen_ai.user.message", {}),
            (
                "gen_ai.choice",
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}},
            ),
        ],
        [
            ("gen_ai.user.message", {}),
            (
                "gen_ai.assistant.message",
                {"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f"}}]},
            ),
            ("gen_ai.tool.message", {"id": "c1"}),
            (
                "gen_ai.choice",
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c2", "type": "function", "function": {"name": "get_weather"}}
                        ],
                    },
                },
            ),
        ],
    ],
    ids=["answer", "tool-calls"],
)
def test_message_events_recorded_without_content_are_an_incomplete_call_with_capture_off(
    events: list[tuple[str, dict[str, Any]]],
) -> None:
    refused = refusal(
        span_item({"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}, events=events)
    )
    assert refused.reason is RejectReason.INCOMPLETE_CALL
    assert refused.message == (
        "otlp-span: LLM span 'chat gpt-4o' carries no request messages: none of "
        "gen_ai.input.messages, gen_ai.prompt.*, gen_ai.*.message events, "
        f"llm.input_messages.*, input.value; {CAPTURE_OFF_TEXT}"
    )


@pytest.mark.parametrize(
    "answer",
    [{"role": "assistant", "content": ""}, {"role": "assistant"}],
    ids=["empty-text", "no-text"],
)
def test_an_empty_answer_to_a_captured_request_in_choice_events_is_an_empty_response(
    answer: dict[str, Any],
) -> None:
    refused = refusal(
        span_item(
            {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"},
            events=[
                ("gen_ai.user.message", {"content": "Hi"}),
                ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": answer}),
            ],
        )
    )
    assert refused.reason is RejectReason.EMPTY_RESPONSE


def test_finish_reasons_of_choices_copied_from_a_recorded_response_are_openais_names() -> None:
    response = {
        "id": "msg-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hey"},
                "finish_reason": "end_turn",
            },
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "TOOL_USE",
            },
        ],
    }
    found = record(
        span_item(
            {
                "openinference.span.kind": "LLM",
                "input.value": json_text({"messages": [{"role": "user", "content": "Hi"}]}),
                "output.value": json_text(response),
            }
        )
    )
    assert [c["finish_reason"] for c in found["response"]["choices"]] == ["stop", "tool_calls"]


def test_listed_finish_reasons_are_matched_to_choices_by_their_index() -> None:
    found = record(
        span_item(
            {
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.finish_reasons": ["stop", "length"],
            },
            events=[
                ("gen_ai.user.message", {"content": "Two answers, please."}),
                ("gen_ai.choice", {"index": 1, "message": {"content": "Second, cut"}}),
                ("gen_ai.choice", {"index": 0, "message": {"content": "First."}}),
            ],
        )
    )
    assert [(c["index"], c["finish_reason"]) for c in found["response"]["choices"]] == [
        (1, "length"),
        (0, "stop"),
    ]


# -- identity --------------------------------------------------------------------------------

CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.input.messages": json_text(
        [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
    ),
    "gen_ai.output.messages": json_text(
        [{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}]
    ),
}


def identity(
    span: Mapping[str, Any], resource: Mapping[str, Any], **settings: Any
) -> tuple[str, str] | Refusal:
    result = outcome(
        span_item({**CALL, **span}, resource=resource),
        ProducerSettings(otlp=OtlpSettings(**settings)),
    )
    if isinstance(result, Refusal):
        return result
    return result.workload_id, result.client_id


def test_the_first_configured_attribute_wins_looked_up_on_the_span_then_the_resource() -> None:
    resource = {"service.name": "shop", "service.namespace": "acme", "flywheel.client_id": "r"}
    assert identity({}, resource) == ("shop", "r")
    assert identity({"gen_ai.agent.name": "planner"}, resource) == ("planner", "r")
    assert identity({"flywheel.client_id": "s"}, resource) == ("shop", "s")
    assert identity({"service.name": "span-svc"}, resource) == ("span-svc", "r")


def test_configured_attributes_replace_the_defaults() -> None:
    found = identity(
        {"nat.function.name": "<workflow>", "user.id": "u-1"},
        {"service.name": "shop"},
        workload_attributes=("nat.function.name",),
        client_attributes=("user.id",),
    )
    assert found == ("workflow", "u-1")


@pytest.mark.parametrize(
    ("value", "identifier"),
    [
        ("Weather Agent (EU)", "Weather-Agent-EU"),
        ("<workflow>", "workflow"),
        ("Café Ünïcode", "Cafe-Unicode"),
        ("team/app@v1.2+beta:x_y", "team/app@v1.2+beta:x_y"),
        ("x" * 300, "x" * 256),
        ("  \t", ""),
    ],
)
def test_values_outside_the_identifier_alphabet_are_mapped_predictably(
    value: str, identifier: str
) -> None:
    assert to_identifier(value) == identifier


def test_the_sdk_default_service_name_is_no_workload() -> None:
    found = identity({}, {"service.name": "unknown_service:python", "service.namespace": "acme"})
    assert isinstance(found, Refusal)
    assert found.reason is RejectReason.MISSING_FIELD
    assert found.message == (
        "otlp-span: no workload id: none of the attributes gen_ai.agent.name, service.name is "
        "set on the span or its resource "
        "(FLYWHEEL_INGEST_PRODUCERS__OTLP__WORKLOAD_ATTRIBUTES names them)"
    )


def test_the_default_client_id_stands_in_for_a_missing_client_attribute() -> None:
    assert identity({}, {"service.name": "shop"}, default_client_id="tenant-1") == (
        "shop",
        "tenant-1",
    )
    missing = identity({}, {"service.name": "shop"})
    assert isinstance(missing, Refusal)
    assert missing.reason is RejectReason.MISSING_FIELD
    assert "FLYWHEEL_INGEST_PRODUCERS__OTLP__DEFAULT_CLIENT_ID is not configured" in missing.message


# -- any content: a record or a refusal ------------------------------------------------------


def test_numbered_attribute_names_count_ascii_digits_only() -> None:
    found = record(
        span_item(
            {
                "gen_ai.system": "openai",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "Hi",
                # Unicode digits ("²".isdigit() is true) are no message number.
                "gen_ai.prompt.².role": "user",
                "gen_ai.prompt.٣.role": "user",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Hello",
            }
        )
    )
    assert found["request"]["messages"] == [{"role": "user", "content": "Hi"}]


def test_message_numbers_are_ordered_by_value_whatever_their_length_or_leading_zeros() -> None:
    huge = "9" * 5000  # past the digits int() converts
    found = record(
        span_item(
            {
                "gen_ai.system": "openai",
                f"gen_ai.prompt.{huge}.role": "user",
                f"gen_ai.prompt.{huge}.content": "last",
                "gen_ai.prompt.10.role": "user",
                "gen_ai.prompt.10.content": "third",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "first",
                "gen_ai.prompt.01.role": "user",
                "gen_ai.prompt.01.content": "first again",
                "gen_ai.prompt.2.role": "user",
                "gen_ai.prompt.2.content": "second",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Hello",
            }
        )
    )
    assert [m["content"] for m in found["request"]["messages"]] == [
        "first",
        "first again",
        "second",
        "third",
        "last",
    ]


def with_start(item: bytes, start: Any) -> bytes:
    document = orjson.loads(item)
    document["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = start
    return json.dumps(document).encode()  # the standard library writes integers of any size


@pytest.mark.parametrize(
    "start",
    [10**27, "1" + "0" * 27, 1e27, str(10_000 * 366 * 86_400 * 10**9)],
    ids=["integer", "text", "double", "past-year-9999"],
)
def test_a_start_time_no_timestamp_can_hold_is_refused_as_an_invalid_timestamp(
    start: Any,
) -> None:
    refused = refusal(with_start(span_item(CALL), start))
    assert refused.reason is RejectReason.INVALID_TIMESTAMP
    assert refused.message.startswith(
        "otlp-span: span 'chat gpt-4o' has a startTimeUnixNano past the year 9999: "
    )


REAL_ITEMS: list[dict[str, Any]] = [
    orjson.loads(item) for item in items_of("nat/*.pb", "relay/*.pb", "relay/*.jsonl")[0]
]
"""The fixtures' LLM spans, whose every part the mutations below reach."""

# Names the translator reads, so that mutations reach its readers rather than stop at a lookup.
_NAMES = st.sampled_from(
    [
        "role", "content", "parts", "type", "text", "id", "name", "arguments", "args",
        "tool_calls", "function", "response", "message", "messages", "choices", "index",
        "finish_reason", "usage", "model", "tools", "parameters", "type_", "uri", "modality",
        "additional_kwargs", "response_metadata", "generation_info", "chat_responses",
        "stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue",
        "values", "key", "value", "code",
    ]
)  # fmt: skip
_ODD_TEXT = st.sampled_from(
    [
        "", "²", "٣", "\uff11", "01", "-1", "1" * 30, "1" * 5000, "1e400", "NaN", "{", "[", "{}",
        "[]", '{"error": 1}', "null", "true", "\n\nTool calls: [{'name': 'f', 'args': {1}}]",
        "\n\nTool calls: [{'name': b'f', 'id': 1j, 'args': {}}]", "tool_calls", "0" * 400,
    ]
)  # fmt: skip
# Steps of a numbered attribute name that are no number, or numbers int() cannot read.
_STEPS = (
    st.sampled_from(["\u00b2", "\u0663", "\uff11", "01", "-1", "", "9" * 5000])
    | _NAMES
    | st.text(max_size=4)
)
_NUMBERED_NAMES = st.sampled_from(
    [
        "gen_ai.prompt.{}.role",
        "gen_ai.completion.{}.content",
        "gen_ai.completion.0.tool_calls.{}.name",
        "llm.input_messages.{}.message.role",
        "llm.output_messages.{}.message.content",
        "llm.output_messages.0.message.tool_calls.{}.tool_call.id",
        "llm.tools.{}.tool.json_schema",
        "llm.request.functions.{}.name",
        "nemo_relay.end.output.{}",
    ]
)
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | _ODD_TEXT,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(_NAMES | st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


_NUMBERS: st.SearchStrategy[Any] = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([10**27, 1e27, 2**70, -1, "1" + "0" * 27, "1e27", "\u00b2", ""])
)
_ANY_VALUES: st.SearchStrategy[Any] = st.one_of(
    _JSON.map(lambda value: {"stringValue": json.dumps(value)}),
    (_ODD_TEXT | st.text(max_size=12)).map(lambda text: {"stringValue": text}),
    _NUMBERS.map(lambda number: {"intValue": number}),
    _NUMBERS.map(lambda number: {"doubleValue": number}),
    _JSON,
)


def _places(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON document, depth first."""
    found: list[tuple[Any, Any]] = []
    keys = node.keys() if isinstance(node, dict) else range(len(node))
    for key in list(keys):
        found.append((node, key))
        if isinstance(node[key], dict | list):
            found.extend(_places(node[key]))
    return found


def _the_span(item: dict[str, Any]) -> dict[str, Any]:
    """The item's span; the item itself once a mutation has broken its shape."""
    scopes = item.get("scopeSpans")
    if isinstance(scopes, list) and scopes and isinstance(scopes[0], dict):
        spans = scopes[0].get("spans")
        if isinstance(spans, list) and spans and isinstance(spans[0], dict):
            span: dict[str, Any] = spans[0]
            return span
    return item


def _key_values(span: dict[str, Any]) -> list[dict[str, Any]]:
    """The KeyValues of the span's and its events' attributes."""
    events = span.get("events")
    lists = [span.get("attributes")] + [
        event.get("attributes")
        for event in (events if isinstance(events, list) else [])
        if isinstance(event, dict)
    ]
    return [kv for kvs in lists if isinstance(kvs, list) for kv in kvs if isinstance(kv, dict)]


def _mutate_anywhere(data: st.DataObject, document: Any) -> None:
    places = _places(document) if isinstance(document, dict | list) else []
    if not places:
        return
    parent, key = places[data.draw(st.integers(0, len(places) - 1))]
    if data.draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = data.draw(_JSON)


def _mutate(data: st.DataObject, item: dict[str, Any]) -> None:
    span = _the_span(item)
    key_values = _key_values(span)
    where = [
        "span field",
        "attribute name",
        "numbered attribute",
        "attribute value",
        "embedded JSON",
        "anywhere",
    ]
    match data.draw(st.sampled_from(where)):
        case "span field" if span:
            # The times most often: the one field read as a number.
            fields = [*sorted(span), "startTimeUnixNano", "startTimeUnixNano"]
            span[data.draw(st.sampled_from(fields))] = data.draw(_NUMBERS | _JSON)
        case "attribute name" if key_values:
            # A dotted step of a name changed, a message number most often
            # (`llm.input_messages.\u00b2.message.role`).
            key_value = data.draw(st.sampled_from(key_values))
            steps = str(key_value.get("key")).split(".")
            numbered = [index for index, step in enumerate(steps) if step.isdigit()]
            step = data.draw(st.sampled_from(numbered or range(len(steps))))
            steps[step] = data.draw(_STEPS)
            key_value["key"] = ".".join(steps)
        case "numbered attribute" if isinstance(span.get("attributes"), list):
            # Another convention's numbered attribute, numbered oddly.
            name = data.draw(_NUMBERED_NAMES).format(data.draw(_STEPS))
            span["attributes"].append({"key": name, "value": data.draw(_ANY_VALUES)})
        case "attribute value" if key_values:
            data.draw(st.sampled_from(key_values))["value"] = data.draw(_ANY_VALUES)
        case "embedded JSON":
            # A JSON document held in a string attribute (`input.value`), mutated inside.
            documents = [
                (parent, key)
                for parent, key in _places(item)
                if isinstance(parent[key], str) and parent[key][:1] in ("{", "[")
            ]
            if documents:
                parent, key = data.draw(st.sampled_from(documents))
                try:
                    inner = orjson.loads(parent[key])
                except orjson.JSONDecodeError:
                    inner = []
                _mutate_anywhere(data, inner)
                parent[key] = json.dumps(inner)
        case _:
            _mutate_anywhere(data, item)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_mutated_real_spans_always_become_a_record_or_an_explained_refusal(
    data: st.DataObject,
) -> None:
    item = copy.deepcopy(data.draw(st.sampled_from(REAL_ITEMS)))
    for _ in range(data.draw(st.integers(1, 4))):
        _mutate(data, item)
    result = outcome(json.dumps(item).encode())
    assert isinstance(result, LogRecord | Refusal)
    if isinstance(result, Refusal):
        assert result.message
