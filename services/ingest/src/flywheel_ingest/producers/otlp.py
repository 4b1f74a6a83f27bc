"""An OTLP LLM span (an `otlp-span` item, see `otlp_decode`) to a Flywheel record.

The call is read from the span's attributes and events, by the first convention that has it,
separately for the request and for the output:

1. OpenTelemetry GenAI: the structured `gen_ai.input.messages` / `gen_ai.output.messages`
   (parts: text, tool_call, tool_call_response, images), `gen_ai.system_instructions`,
   `gen_ai.tool.definitions` (also inside a `gen_ai.client.inference.operation.details` event);
   then the older indexed `gen_ai.prompt.{i}.*` / `gen_ai.completion.{i}.*`; then the message
   events (`gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
   `gen_ai.tool.message`, `gen_ai.choice`). With `gen_ai.request.*`, `gen_ai.response.*` and
   `gen_ai.usage.*`.
2. The call recorded whole: an OpenAI request / response as JSON in `input.value` /
   `output.value` (OpenInference's OpenAI instrumentation writes them), or NeMo Relay's
   `nemo_relay.start.input.content` / `nemo_relay.end.output.*`. They are read ahead of
   OpenInference's flattened copies of the same call, which lose details (Relay's leave a
   history turn's tool calls out).
3. OpenInference: `llm.input_messages.{i}.message.*`, `llm.output_messages.{i}.message.*`,
   `llm.tools.{i}.tool.json_schema`, `llm.model_name`, `llm.invocation_parameters`,
   `llm.token_count.*`.
4. Other `input.value` / `output.value`: a list of messages (OpenAI's, or LangChain's as NeMo
   Agent Toolkit writes them), or text; with NeMo Agent Toolkit's `nat.metadata`
   (`chat_inputs`, `chat_responses`, `tools_schema`). NAT writes an answer's tool calls nowhere
   but at the end of `output.value`, as the Python repr of LangChain's calls after
   "Tool calls: ", which is read as a Python literal (never evaluated).

Tool-call ids and arguments stay as the producer gave them (an object or a string of JSON; a
call that gives no arguments at all gets `{}`).

Identity: `workload_id` is the value of the first of `workload_attributes` set on the span or,
failing that, on its resource (each name is looked up on both before the next); `client_id`
likewise from `client_attributes`, else `default_client_id`. OpenTelemetry SDKs' default
`service.name` (`unknown_service...`) counts as unset. A value is made an identifier
predictably: accents are dropped (NFKD), every run of characters outside letters, digits and
`_.:@/+-` becomes one `-`, `-` at either end is dropped, and it is cut to 256 characters
("Weather Agent (EU)" -> "Weather-Agent-EU", "<workflow>" -> "workflow").
"""

import ast
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import orjson

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import OtlpSettings, ProducerSettings
from flywheel_ingest.producers.formats import Untranslatable

PRODUCER = "otlp"

Message = dict[str, Any]

ROLES = {
    "system": "system",
    "developer": "developer",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "function",
    "chain": "function",
}
"""Roles as conventions and frameworks name them, as OpenAI names them; others stay as they are
(and validation refuses them)."""

FINISH_REASONS = {
    "tool_call": "tool_calls",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "function_call",
    "stop": "stop",
    "complete": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
}
"""GenAI's (`tool_call`), NeMo Relay's OpenInference ones (`tool_use`, `complete`), Anthropic's
(`end_turn`) and OpenAI's names, as OpenAI's."""

REQUEST_PARAMETERS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "user",
    }
)
"""OpenAI chat parameters kept from `llm.invocation_parameters` or an `input.value` request."""

GEN_AI_PARAMETERS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.choice.count": "n",
}

UNKNOWN_SERVICE = "unknown_service"
"""The OpenTelemetry SDKs' `service.name` when the application sets none."""

NAT_TOOL_CALLS = "\n\nTool calls: "
"""What NeMo Agent Toolkit's LangChain callback puts between an answer and its tool calls."""

_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_STRUCTURED = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
)
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_IDENTIFIER_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@/+-"
)
_IDENTIFIER_MAX = 256
_LITERAL_MAX = 200_000
_LITERAL_TRIES = 4
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_INPUT_SOURCES = (
    "gen_ai.input.messages, gen_ai.prompt.*, gen_ai.*.message events, "
    "llm.input_messages.*, input.value"
)
_OUTPUT_SOURCES = (
    "gen_ai.output.messages, gen_ai.completion.*, gen_ai.choice events, "
    "llm.output_messages.*, output.value"
)


@dataclass(frozen=True, slots=True)
class OtlpSpan:
    """The parts of an item a record is made of, attribute values decoded."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    events: tuple[tuple[str, dict[str, Any]], ...]
    status: str

    def attribute(self, name: str) -> Any:
        return self.attributes.get(name)


def to_record(item: dict[str, Any], settings: ProducerSettings) -> dict[str, Any]:
    try:
        return _to_record(item, settings)
    except RecursionError:
        # Only a hand-made item nests this deep: the decoder refuses bodies nested past 100.
        _wrong("the item nests too deeply to be read")


def _to_record(item: dict[str, Any], settings: ProducerSettings) -> dict[str, Any]:
    span = read_span(item)
    messages, tools, parameters, convention = _request_parts(span)
    model = _first_text(
        span.attribute("gen_ai.request.model"),
        span.attribute("llm.model_name"),
        parameters.pop("model", None),
        span.attribute("gen_ai.response.model"),
    )
    request: dict[str, Any] = {"model": model} if model else {}
    request["messages"] = messages
    if tools:
        request["tools"] = tools
    request.update(parameters)
    response = _response(span, model)
    return {
        "workload_id": _workload_id(span, settings.otlp),
        "client_id": _client_id(span, settings.otlp),
        "timestamp": _timestamp(span),
        "request": request,
        "response": response,
        "metadata": _metadata(span, convention),
    }


# -- the item --------------------------------------------------------------------------------


def read_span(item: Mapping[str, Any]) -> OtlpSpan:
    """The one span of an item (a ResourceSpans with one scope and one span)."""
    scopes = _field(item, "scopeSpans", "scope_spans")
    if not isinstance(scopes, list) or len(scopes) != 1 or not isinstance(scopes[0], dict):
        _wrong("an otlp-span item is a ResourceSpans whose scopeSpans holds one scope")
    spans = _field(scopes[0], "spans")
    if not isinstance(spans, list) or len(spans) != 1 or not isinstance(spans[0], dict):
        _wrong("an otlp-span item's scopeSpans[0].spans holds exactly one span")
    span: dict[str, Any] = spans[0]
    resource = _field(item, "resource")
    scope = _field(scopes[0], "scope")
    status = _field(span, "status")
    events = _field(span, "events")
    return OtlpSpan(
        name=str(span.get("name") or ""),
        trace_id=_text(_field(span, "traceId", "trace_id")),
        span_id=_text(_field(span, "spanId", "span_id")),
        parent_span_id=_text(_field(span, "parentSpanId", "parent_span_id")),
        start_ns=_nanoseconds(_field(span, "startTimeUnixNano", "start_time_unix_nano")),
        attributes=attributes(_field(span, "attributes")),
        resource=attributes(_field(resource, "attributes") if isinstance(resource, dict) else []),
        scope=_text(scope.get("name")) if isinstance(scope, dict) else "",
        events=tuple(
            (_text(event.get("name")), attributes(_field(event, "attributes")))
            for event in (events if isinstance(events, list) else [])
            if isinstance(event, dict)
        ),
        status=_status(status),
    )


def attributes(key_values: object) -> dict[str, Any]:
    """OTLP/JSON `KeyValue`s as a dict of plain values (the last of a repeated key wins)."""
    if not isinstance(key_values, list):
        return {}
    decoded: dict[str, Any] = {}
    for key_value in key_values:
        if isinstance(key_value, dict) and isinstance(key_value.get("key"), str):
            decoded[key_value["key"]] = any_value(key_value.get("value"))
    return decoded


def any_value(value: object) -> Any:
    """An OTLP/JSON `AnyValue` as a plain value (bytes stay base64 text; an empty one is None)."""
    if not isinstance(value, dict):
        return None
    for key, inner in value.items():
        match key:
            case "stringValue" | "string_value" | "bytesValue" | "bytes_value":
                return inner if isinstance(inner, str) else None
            case "boolValue" | "bool_value":
                return inner if isinstance(inner, bool) else None
            case "intValue" | "int_value":
                return _integer(inner)
            case "doubleValue" | "double_value":
                return _double(inner)
            case "arrayValue" | "array_value":
                items = inner.get("values") if isinstance(inner, dict) else None
                return [any_value(entry) for entry in items] if isinstance(items, list) else []
            case "kvlistValue" | "kvlist_value":
                return attributes(inner.get("values") if isinstance(inner, dict) else None)
    return None


def _field(node: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in node:
            return node[name]
    return None


def _status(status: object) -> str:
    if not isinstance(status, dict):
        return ""
    code = status.get("code")
    message = _text(status.get("message"))
    if code in (2, "2", "STATUS_CODE_ERROR"):
        return f"ERROR {message!r}" if message else "ERROR"
    return ""


# -- the request -----------------------------------------------------------------------------


def _request_parts(span: OtlpSpan) -> tuple[list[Message], list[Any], dict[str, Any], str]:
    """Messages, tools, parameters (OpenAI names) and which convention gave the messages."""
    structured = _structured(span)
    nat = _nat_metadata(span)
    request_value = _verbatim_request(span)
    readers: tuple[tuple[str, Callable[[], list[Message] | None]], ...] = (
        ("gen_ai", lambda: _gen_ai_input(structured)),
        ("gen_ai.prompt", lambda: _indexed_messages(span.attributes, "gen_ai.prompt.")),
        ("gen_ai.events", lambda: _event_messages(span)),
        ("openai", lambda: _request_messages(request_value)),
        ("openinference", lambda: _openinference_messages(span.attributes, "llm.input_messages.")),
        ("input.value", lambda: _message_list(request_value)),
        ("nat.metadata", lambda: _message_list(nat.get("chat_inputs"))),
        ("input.value", lambda: _text_prompt(span.attribute("input.value"))),
    )
    for name, read in readers:
        messages = read()
        if messages:
            convention = name
            break
    else:
        _incomplete(span, f"carries no request messages: none of {_INPUT_SOURCES}")
    tools = (
        _tool_list(structured.get("gen_ai.tool.definitions"))
        or _tool_list(request_value.get("tools") if isinstance(request_value, dict) else None)
        or _openinference_tools(span.attributes)
        or _tool_list(_indexed_functions(span.attributes))
        or _tool_list(nat.get("tools_schema"))
    )
    parameters = {
        name: span.attributes[key]
        for key, name in GEN_AI_PARAMETERS.items()
        if key in span.attributes
    }
    invocation = _json(span.attribute("llm.invocation_parameters"))
    for source in (invocation, request_value):
        if isinstance(source, dict):
            for name, value in source.items():
                if name in REQUEST_PARAMETERS or name == "model":
                    parameters.setdefault(name, value)
    return messages, tools, parameters, convention


def _structured(span: OtlpSpan) -> dict[str, Any]:
    """The structured GenAI attributes, from the span or else its operation-details event."""
    found = {name: span.attributes[name] for name in _STRUCTURED if name in span.attributes}
    for name, event in span.events:
        if name == _DETAILS_EVENT:
            for key in _STRUCTURED:
                if key in event:
                    found.setdefault(key, event[key])
    return {name: _json(value) for name, value in found.items()}


def _gen_ai_input(structured: Mapping[str, Any]) -> list[Message] | None:
    raw = structured.get("gen_ai.input.messages")
    if not isinstance(raw, list):
        return None
    messages: list[Message] = []
    instructions = structured.get("gen_ai.system_instructions")
    if isinstance(instructions, list) and instructions:
        messages.append({"role": "system", "content": _parts_content(instructions)})
    elif isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    for message in raw:
        if isinstance(message, dict):
            messages.extend(_parts_message(message))
    return messages


def _parts_message(message: Mapping[str, Any]) -> list[Message]:
    """A GenAI parts-based message as OpenAI messages (each tool response is one)."""
    role = _role(message.get("role"))
    parts = message.get("parts")
    if not isinstance(parts, list):
        plain = _chat_message(message)
        return [plain] if plain else []
    responses = [
        {
            "role": "tool",
            "tool_call_id": part.get("id"),
            "content": _as_text(part.get("response")),
        }
        for part in parts
        if isinstance(part, dict) and part.get("type") == "tool_call_response"
    ]
    if responses:
        return responses
    calls = [
        _tool_call(part.get("id"), part.get("name"), part.get("arguments"))
        for part in parts
        if isinstance(part, dict) and part.get("type") == "tool_call"
    ]
    content = _parts_content(parts)
    converted: Message = {"role": role, "content": None if calls and content == "" else content}
    if calls:
        converted["tool_calls"] = calls
    if isinstance(message.get("name"), str):
        converted["name"] = message["name"]
    return [converted]


def _parts_content(parts: Sequence[Any]) -> str | list[dict[str, Any]]:
    """Text parts (and images) as OpenAI content: a string when it is one text part."""
    content: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" or (kind is None and isinstance(part.get("content"), str)):
            content.append({"type": "text", "text": _as_text(part.get("content"))})
        elif kind in ("uri", "blob", "image") and part.get("modality", "image") == "image":
            url = part.get("uri")
            if url is None and isinstance(part.get("content"), str):
                url = f"data:{part.get('mime_type') or 'image/png'};base64,{part['content']}"
            if isinstance(url, str):
                content.append({"type": "image_url", "image_url": {"url": url}})
    if len(content) == 1 and content[0]["type"] == "text":
        text: str = content[0]["text"]
        return text
    return content if content else ""


def _indexed_messages(attrs: Mapping[str, Any], prefix: str) -> list[Message] | None:
    """`gen_ai.prompt.{i}.role/content/tool_call_id/tool_calls.{j}.id/name/arguments`."""
    entries = _indexed(attrs, prefix)
    messages: list[Message] = []
    for entry in entries:
        message: Message = {"role": _role(entry.get("role")), "content": entry.get("content")}
        calls = [
            _tool_call(call.get("id"), call.get("name"), call.get("arguments"))
            for call in _as_list(entry.get("tool_calls"))
            if isinstance(call, dict)
        ]
        if calls:
            message["tool_calls"] = calls
        if entry.get("tool_call_id") is not None:
            message["tool_call_id"] = entry["tool_call_id"]
        messages.append(message)
    return messages or None


def _event_messages(span: OtlpSpan) -> list[Message] | None:
    messages: list[Message] = []
    for name, event in span.events:
        role = _MESSAGE_EVENTS.get(name)
        if role is None:
            continue
        message: Message = {"role": _role(event.get("role") or role)}
        message["content"] = _json_if_structured(event.get("content"))
        calls = _calls(_json(event.get("tool_calls")))
        if calls:
            message["tool_calls"] = calls
        if role == "tool" and event.get("id") is not None:
            message["tool_call_id"] = event["id"]
        messages.append(message)
    return messages or None


def _openinference_messages(attrs: Mapping[str, Any], prefix: str) -> list[Message] | None:
    """`llm.input_messages.{i}.message.role/content/contents/tool_calls/tool_call_id/name`."""
    messages: list[Message] = []
    for entry in _indexed(attrs, prefix):
        raw = entry.get("message")
        if not isinstance(raw, dict):
            continue
        content: Any = raw.get("content")
        contents = _as_list(raw.get("contents"))
        if content is None and contents:
            content = _openinference_contents(contents)
        message: Message = {"role": _role(raw.get("role")), "content": content}
        calls = [
            _tool_call(call.get("id"), function.get("name"), function.get("arguments"))
            for wrapper in _as_list(raw.get("tool_calls"))
            if isinstance(wrapper, dict)
            and isinstance(call := wrapper.get("tool_call"), dict)
            and isinstance(function := call.get("function"), dict)
        ]
        if calls:
            message["tool_calls"] = calls
        if raw.get("tool_call_id") is not None:
            message["tool_call_id"] = raw["tool_call_id"]
        if isinstance(raw.get("name"), str):
            message["name"] = raw["name"]
        messages.append(message)
    return messages or None


def _openinference_contents(contents: Sequence[Any]) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for wrapper in contents:
        content = wrapper.get("message_content") if isinstance(wrapper, dict) else None
        if not isinstance(content, dict):
            continue
        if content.get("type") == "image":
            image = content.get("image")
            url = image.get("image", {}).get("url") if isinstance(image, dict) else None
            if isinstance(url, str):
                parts.append({"type": "image_url", "image_url": {"url": url}})
        elif isinstance(content.get("text"), str):
            parts.append({"type": "text", "text": content["text"]})
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def _verbatim_request(span: OtlpSpan) -> Any:
    """The request as the application sent it, when a span records it whole: `input.value`
    (OpenInference's OpenAI instrumentation writes the request's JSON there; NAT writes its
    message list) or NeMo Relay's `nemo_relay.start.input.content` (its `full` flavour)."""
    relay = _json(span.attribute("nemo_relay.start.input.content"))
    if isinstance(relay, dict) and isinstance(relay.get("messages"), list):
        return relay
    return _json(span.attribute("input.value"))


def _request_messages(value: Any) -> list[Message] | None:
    """An OpenAI request's messages."""
    return _message_list(value.get("messages")) if isinstance(value, dict) else None


def _message_list(value: Any) -> list[Message] | None:
    if not isinstance(value, list) or not value:
        return None
    messages = [_chat_message(entry) for entry in value if isinstance(entry, dict)]
    if len(messages) != len(value) or not all(messages):
        return None  # not a list of messages
    return [message for message in messages if message]


def _chat_message(raw: Mapping[str, Any]) -> Message | None:
    """An OpenAI message, or a LangChain message as `model_dump` writes it (`type`: human, ai,
    system, tool, or an `AIMessageChunk` and the like)."""
    role = raw.get("role")
    kind = raw.get("type")
    if not isinstance(role, str) and isinstance(kind, str):
        role = kind.removesuffix("MessageChunk").lower()
    if not isinstance(role, str) or ("content" not in raw and "tool_calls" not in raw):
        return None
    message: Message = {"role": _role(role), "content": raw.get("content")}
    additional = raw.get("additional_kwargs")
    calls = _calls(raw.get("tool_calls")) or _calls(
        additional.get("tool_calls") if isinstance(additional, dict) else None
    )
    if calls:
        message["tool_calls"] = calls
    if raw.get("tool_call_id") is not None:
        message["tool_call_id"] = raw["tool_call_id"]
    if isinstance(raw.get("name"), str):
        message["name"] = raw["name"]
    return message


def _text_prompt(value: Any) -> list[Message] | None:
    """A prompt logged as plain text: one user message."""
    if isinstance(value, str) and value.strip() and not isinstance(_json(value), dict | list):
        return [{"role": "user", "content": value}]
    return None


# -- tools -----------------------------------------------------------------------------------


def _tool_list(value: Any) -> list[Any]:
    """Tool definitions in OpenAI's shape, from OpenAI's own, GenAI's flat `{type, name,
    description, parameters}`, or NAT's `tools_schema` (whose parameters say `type_`)."""
    if not isinstance(value, list):
        return []
    return [_tool(definition) for definition in value if isinstance(definition, dict)]


def _tool(definition: Mapping[str, Any]) -> dict[str, Any]:
    function = definition.get("function")
    if not isinstance(function, dict):
        function = {
            key: definition[key]
            for key in ("name", "description", "parameters", "strict")
            if key in definition
        }
    parameters = function.get("parameters")
    if isinstance(parameters, dict) and "type_" in parameters and "type" not in parameters:
        # NAT 1.9's ToolParameters dumps its `type` field under the Python name.
        function = {
            **function,
            "parameters": {
                ("type" if key == "type_" else key): value for key, value in parameters.items()
            },
        }
    return {"type": definition.get("type") or "function", "function": function}


def _openinference_tools(attrs: Mapping[str, Any]) -> list[Any]:
    schemas = [
        _json(entry.get("tool", {}).get("json_schema"))
        for entry in _indexed(attrs, "llm.tools.")
        if isinstance(entry.get("tool"), dict)
    ]
    return _tool_list([schema for schema in schemas if isinstance(schema, dict)])


def _indexed_functions(attrs: Mapping[str, Any]) -> list[Any]:
    """OpenLLMetry's `llm.request.functions.{i}.name/description/parameters`."""
    return [
        {**entry, "parameters": _json(entry["parameters"])} if "parameters" in entry else entry
        for entry in _indexed(attrs, "llm.request.functions.")
    ]


# -- the response ----------------------------------------------------------------------------


def _response(span: OtlpSpan, request_model: str | None) -> dict[str, Any]:
    structured = _structured(span)
    output = _verbatim_response(span)
    nat = _nat_metadata(span)
    readers: tuple[Callable[[], list[dict[str, Any]] | None], ...] = (
        lambda: _gen_ai_choices(structured.get("gen_ai.output.messages")),
        lambda: _indexed_choices(span.attributes),
        lambda: _event_choices(span),
        lambda: _openai_choices(output),
        lambda: _message_choices(_openinference_messages(span.attributes, "llm.output_messages.")),
        lambda: _nat_choices(nat.get("chat_responses"), span.attribute("output.value")),
        lambda: _text_choices(span.attribute("output.value")),
    )
    for read in readers:
        choices = read()
        if choices:
            break
    else:
        failed = f" (status {span.status})" if span.status else ""
        _incomplete(span, f"carries no output{failed}: none of {_OUTPUT_SOURCES}")
    _finish_reasons(choices, span)
    response: dict[str, Any] = {}
    response_id = _first_text(
        span.attribute("gen_ai.response.id"),
        output.get("id") if isinstance(output, dict) else None,
        _nat_response_field(nat, "id"),
    )
    if response_id:
        response["id"] = response_id
    response["object"] = "chat.completion"
    response["created"] = span.start_ns // 1_000_000_000
    model = _first_text(
        span.attribute("gen_ai.response.model"),
        output.get("model") if isinstance(output, dict) else None,
        _nat_response_field(nat, "model_name"),
        request_model,
    )
    if model:
        response["model"] = model
    response["choices"] = choices
    usage = _usage(span, output)
    if usage:
        response["usage"] = usage
    return response


def _gen_ai_choices(raw: Any) -> list[dict[str, Any]] | None:
    if not isinstance(raw, list):
        return None
    choices: list[dict[str, Any]] = []
    for message in raw:
        if not isinstance(message, dict):
            continue
        converted = _parts_message({**message, "role": message.get("role") or "assistant"})
        if converted:
            choices.append(_choice(len(choices), converted[0], message.get("finish_reason")))
    return choices or None


def _indexed_choices(attrs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    messages = _indexed_messages(attrs, "gen_ai.completion.")
    if not messages:
        return None
    entries = _indexed(attrs, "gen_ai.completion.")
    return [
        _choice(index, message, entry.get("finish_reason"))
        for index, (message, entry) in enumerate(zip(messages, entries, strict=True))
    ]


def _event_choices(span: OtlpSpan) -> list[dict[str, Any]] | None:
    choices: list[dict[str, Any]] = []
    for name, event in span.events:
        if name != "gen_ai.choice":
            continue
        raw = _json(event.get("message"))
        message = _chat_message({"role": "assistant", **raw} if isinstance(raw, dict) else {})
        if message is None:
            message = {"role": "assistant", "content": None}
        calls = _calls(_json(event.get("tool_calls")))
        if calls and "tool_calls" not in message:
            message["tool_calls"] = calls
        index = _integer(event.get("index"))
        choices.append(
            _choice(len(choices) if index is None else index, message, event.get("finish_reason"))
        )
    return choices or None


def _message_choices(messages: list[Message] | None) -> list[dict[str, Any]] | None:
    if not messages:
        return None
    return [_choice(index, message, None) for index, message in enumerate(messages)]


def _verbatim_response(span: OtlpSpan) -> Any:
    """The response as the model answered it, when a span records it whole: `output.value`
    holding the response's JSON, or NeMo Relay's `nemo_relay.end.output.*` (its `full` and
    `openinference` flavours split the response's top-level fields into attributes)."""
    prefix = "nemo_relay.end.output."
    relay = {
        key[len(prefix) :]: _json(value)
        for key, value in span.attributes.items()
        if key.startswith(prefix) and "." not in key[len(prefix) :]
    }
    if isinstance(relay.get("choices"), list):
        return relay
    return _json(span.attribute("output.value"))


def _openai_choices(output: Any) -> list[dict[str, Any]] | None:
    if not isinstance(output, dict) or not isinstance(output.get("choices"), list):
        return None
    choices = [choice for choice in output["choices"] if isinstance(choice, dict)]
    return choices or None


def _nat_choices(responses: Any, output_value: Any) -> list[dict[str, Any]] | None:
    """NAT's `chat_responses` (LangChain generations). Their messages are dumped as LangChain's
    base message, without an AI message's `tool_calls`: those come from `output.value`."""
    if not isinstance(responses, list) or not responses:
        return None
    choices: list[dict[str, Any]] = []
    for generation in responses:
        if not isinstance(generation, dict):
            continue
        raw = generation.get("message")
        message = _chat_message(raw) if isinstance(raw, dict) else None
        if message is None:
            message = {"role": "assistant", "content": generation.get("text")}
        message["role"] = "assistant"
        if "tool_calls" not in message and len(responses) == 1:
            calls = _nat_tool_calls(output_value)
            if calls:
                message["tool_calls"] = calls
        metadata = raw.get("response_metadata") if isinstance(raw, dict) else None
        info = generation.get("generation_info")
        finish = _first_text(
            metadata.get("finish_reason") if isinstance(metadata, dict) else None,
            info.get("finish_reason") if isinstance(info, dict) else None,
        )
        choices.append(_choice(len(choices), message, finish))
    return choices or None


def _text_choices(output_value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(output_value, str):
        return None
    content, calls = _split_nat_tool_calls(output_value)
    if not content and not calls:
        return None
    message: Message = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = calls
    return [_choice(0, message, None)]


def _choice(index: int, message: Message, finish_reason: Any) -> dict[str, Any]:
    message = {**message, "role": "assistant"}
    if message.get("tool_calls") and message.get("content") == "":
        message["content"] = None  # as OpenAI answers a tool call
    return {"index": index, "message": message, "finish_reason": _finish_reason(finish_reason)}


def _finish_reasons(choices: list[dict[str, Any]], span: OtlpSpan) -> None:
    """Fill a choice's missing finish reason from `gen_ai.response.finish_reasons` (by index)
    or OpenInference's `llm.finish_reason` (Relay writes it); unknown stays unset."""
    listed = _as_list(span.attribute("gen_ai.response.finish_reasons"))
    single = span.attribute("llm.finish_reason")
    for position, choice in enumerate(choices):
        if choice.get("finish_reason") is None:
            given = listed[position] if position < len(listed) else single
            choice["finish_reason"] = _finish_reason(given)


def _finish_reason(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return FINISH_REASONS.get(value.lower(), value.lower())


def _usage(span: OtlpSpan, output: Any) -> dict[str, int] | None:
    if isinstance(output, dict) and isinstance(output.get("usage"), dict):
        usage: dict[str, int] = output["usage"]
        return usage
    prompt = _integer(
        _first_present(
            span.attribute("gen_ai.usage.input_tokens"),
            span.attribute("gen_ai.usage.prompt_tokens"),
            span.attribute("llm.token_count.prompt"),
        )
    )
    completion = _integer(
        _first_present(
            span.attribute("gen_ai.usage.output_tokens"),
            span.attribute("gen_ai.usage.completion_tokens"),
            span.attribute("llm.token_count.completion"),
        )
    )
    if prompt is None and completion is None:
        return None
    total = _integer(span.attribute("llm.token_count.total"))
    return {
        "prompt_tokens": prompt or 0,
        "completion_tokens": completion or 0,
        "total_tokens": total if total else (prompt or 0) + (completion or 0),
    }


# -- NeMo Agent Toolkit ----------------------------------------------------------------------


def _nat_metadata(span: OtlpSpan) -> dict[str, Any]:
    metadata = _json(span.attribute("nat.metadata"))
    return metadata if isinstance(metadata, dict) else {}


def _nat_response_field(nat: Mapping[str, Any], name: str) -> Any:
    responses = nat.get("chat_responses")
    if not isinstance(responses, list) or not responses or not isinstance(responses[0], dict):
        return None
    message = responses[0].get("message")
    metadata = message.get("response_metadata") if isinstance(message, dict) else None
    return metadata.get(name) if isinstance(metadata, dict) else None


def _nat_tool_calls(output_value: Any) -> list[dict[str, Any]]:
    return _split_nat_tool_calls(output_value)[1] if isinstance(output_value, str) else []


def _split_nat_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """NAT's "<answer>\\n\\nTool calls: <repr of the calls>" as the answer and its calls."""
    start = 0
    for _ in range(_LITERAL_TRIES):
        position = text.find(NAT_TOOL_CALLS, start)
        if position < 0:
            break
        literal = text[position + len(NAT_TOOL_CALLS) :]
        calls = _calls(_python_literal(literal))
        if calls:
            return text[:position], calls
        start = position + 1
    return text, []


def _python_literal(text: str) -> Any:
    """A Python literal (what `repr` wrote), never evaluated as code; None when it is not one."""
    if len(text) > _LITERAL_MAX:
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


# -- tool calls ------------------------------------------------------------------------------


def _calls(value: Any) -> list[dict[str, Any]]:
    """Tool calls in OpenAI's shape, from OpenAI's (`function.name/arguments`) or LangChain's
    (`name`, `args`) or GenAI's flat (`name`, `arguments`)."""
    calls = []
    for call in _as_list(value):
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if isinstance(function, dict):
            calls.append(
                {
                    "id": call.get("id"),
                    "type": call.get("type") or "function",
                    "function": {
                        "name": function.get("name"),
                        "arguments": _arguments(function.get("arguments")),
                    },
                }
            )
        elif "name" in call:
            arguments = call["args"] if "args" in call else call.get("arguments")
            calls.append(_tool_call(call.get("id"), call.get("name"), arguments))
    return calls


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": _arguments(arguments)},
    }


def _arguments(arguments: Any) -> Any:
    """As given; a call with no arguments at all takes none (`{}`)."""
    return {} if arguments is None else arguments


# -- identity, time, provenance --------------------------------------------------------------


def _workload_id(span: OtlpSpan, settings: OtlpSettings) -> str:
    found = _identity(span, settings.workload_attributes)
    if found is None:
        _missing(
            "no workload id: none of the attributes "
            f"{', '.join(settings.workload_attributes)} is set on the span or its resource "
            "(FLYWHEEL_INGEST_PRODUCERS__OTLP__WORKLOAD_ATTRIBUTES names them)"
        )
    return found


def _client_id(span: OtlpSpan, settings: OtlpSettings) -> str:
    found = _identity(span, settings.client_attributes) or settings.default_client_id
    if found is None:
        _missing(
            "no client id: none of the attributes "
            f"{', '.join(settings.client_attributes)} is set on the span or its resource, "
            "and FLYWHEEL_INGEST_PRODUCERS__OTLP__DEFAULT_CLIENT_ID is not configured"
        )
    return found


def _identity(span: OtlpSpan, names: Iterable[str]) -> str | None:
    for name in names:
        for scope in (span.attributes, span.resource):
            value = scope.get(name)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                continue
            text = str(value)
            if name == "service.name" and text.startswith(UNKNOWN_SERVICE):
                continue
            identifier = to_identifier(text)
            if identifier:
                return identifier
    return None


def to_identifier(text: str) -> str:
    """`text` in the identifier alphabet (see the module's docstring); empty when nothing is
    left of it."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept: list[str] = []
    for character in decomposed:
        if unicodedata.combining(character):
            continue
        if character in _IDENTIFIER_CHARS:
            kept.append(character)
        elif not kept or kept[-1] != "-":
            kept.append("-")
    return "".join(kept).strip("-")[:_IDENTIFIER_MAX].strip("-")


def _timestamp(span: OtlpSpan) -> str:
    if span.start_ns <= 0:
        _missing(f"span {span.name!r} has no startTimeUnixNano")
    instant = _EPOCH + timedelta(microseconds=span.start_ns // 1000)
    return instant.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _metadata(span: OtlpSpan, convention: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "producer": PRODUCER,
        "convention": convention,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
    }
    optional = {
        "parent_span_id": span.parent_span_id,
        "span_name": span.name,
        "service_name": _first_text(span.resource.get("service.name")),
        "instrumentation_scope": span.scope,
        "session_id": _first_text(
            span.attribute("session.id"),
            span.attribute("gen_ai.conversation.id"),
        ),
        "agent_name": _first_text(span.attribute("gen_ai.agent.name")),
        "nat_function": _first_text(span.attribute("nat.function.name")),
        "nat_workflow_run_id": _first_text(span.attribute("nat.workflow.run_id")),
    }
    metadata.update({name: value for name, value in optional.items() if value})
    return metadata


# -- values ----------------------------------------------------------------------------------


def _indexed(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Flattened `prefix{i}.a.b` attributes as a list (by i) of nested dicts, in which numbered
    levels (`tool_calls.{j}`) are lists too."""
    tree: dict[str, Any] = {}
    for key, value in attrs.items():
        if key.startswith(prefix):
            _insert(tree, key[len(prefix) :].split("."), value)
    return [entry for entry in _listed(tree) if isinstance(entry, dict)]


def _insert(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for step in path[:-1]:
        child = node.get(step)
        if not isinstance(child, dict):
            child = node[step] = {}
        node = child
    node[path[-1]] = value


def _listed(node: dict[str, Any]) -> list[Any]:
    numbered = sorted((int(key), value) for key, value in node.items() if key.isdigit())
    return [_lists(value) for _, value in numbered]


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return _listed(node)
    return {key: _lists(value) for key, value in node.items()}


def _json(value: Any) -> Any:
    """A JSON document held in a string attribute, parsed; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _json_if_structured(value: Any) -> Any:
    parsed = _json(value)
    return parsed if isinstance(parsed, list) else value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else orjson.dumps(value).decode()


def _role(role: Any) -> Any:
    return ROLES.get(role.lower(), role) if isinstance(role, str) else role


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def _first_present(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _double(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _nanoseconds(value: Any) -> int:
    nanoseconds = _integer(value)
    return nanoseconds if nanoseconds is not None else 0


def _incomplete(span: OtlpSpan, what: str) -> NoReturn:
    raise Untranslatable(RejectReason.INCOMPLETE_CALL, f"LLM span {span.name!r} {what}")


def _missing(message: str) -> NoReturn:
    raise Untranslatable(RejectReason.MISSING_FIELD, message)


def _wrong(message: str) -> NoReturn:
    raise Untranslatable(RejectReason.WRONG_TYPE, message)
