"""A call's messages as OpenAI chat messages, from whichever convention recorded them.

The request's messages come from the first convention that has any (in the package's order);
the response reads its choices with the same converters, so a message written one way means
the same on either side of the call.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from flywheel_ingest.producers.otlp.span import OtlpSpan, incomplete
from flywheel_ingest.producers.otlp.tools import tool_call, tool_calls
from flywheel_ingest.producers.otlp.values import as_list, indexed, parsed_json

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
_CHOICE_EVENT = "gen_ai.choice"
_INPUT_SOURCES = (
    "gen_ai.input.messages, gen_ai.prompt.*, gen_ai.*.message events, "
    "llm.input_messages.*, input.value"
)

CAPTURE_OFF = (
    "its GenAI message events carry no content: content capture appears to be off "
    "(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true in the instrumented application "
    "records it)"
)


def gen_ai_structured(span: OtlpSpan) -> dict[str, Any]:
    """The structured GenAI attributes, from the span or else its operation-details event."""
    found = {name: span.attributes[name] for name in _STRUCTURED if name in span.attributes}
    for name, event in span.events:
        if name == _DETAILS_EVENT:
            for key in _STRUCTURED:
                if key in event:
                    found.setdefault(key, event[key])
    return {name: parsed_json(value) for name, value in found.items()}


def request_messages(
    span: OtlpSpan, structured: Mapping[str, Any], request_value: Any, nat: Mapping[str, Any]
) -> tuple[list[Message], str]:
    """The request's messages, from the first convention that has any, and its name."""
    readers: tuple[tuple[str, Callable[[], list[Message] | None]], ...] = (
        ("gen_ai", lambda: _gen_ai_input(structured)),
        ("gen_ai.prompt", lambda: indexed_messages(span.attributes, "gen_ai.prompt.")),
        ("gen_ai.events", lambda: _event_messages(span)),
        ("openai", lambda: _openai_request_messages(request_value)),
        ("openinference", lambda: openinference_messages(span.attributes, "llm.input_messages.")),
        ("input.value", lambda: _message_list(request_value)),
        ("nat.metadata", lambda: _message_list(nat.get("chat_inputs"))),
        ("input.value", lambda: _text_prompt(span.attribute("input.value"))),
    )
    for name, read in readers:
        messages = read()
        if messages:
            return messages, name
    off = f"; {CAPTURE_OFF}" if content_capture_off(span) else ""
    incomplete(span, f"carries no request messages: none of {_INPUT_SOURCES}{off}")


def content_capture_off(span: OtlpSpan) -> bool:
    """Whether the span's GenAI message and choice events were written with content capture
    off: there are some, and none holds a message's content or a tool call's arguments (the
    instrumentations then keep roles, ids, tool names and finish reasons only). Such events are
    no messages: read as such, they would make a prompt of empty turns and an answer that looks
    empty, or tool calls without their arguments."""
    events = [
        event for name, event in span.events if name in _MESSAGE_EVENTS or name == _CHOICE_EVENT
    ]
    return bool(events) and not any(_carries_content(event) for event in events)


def _carries_content(event: Mapping[str, Any]) -> bool:
    message = parsed_json(event.get("message"))
    if not isinstance(message, dict):
        message = {}
    if event.get("content") is not None or message.get("content") is not None:
        return True
    calls = [
        *as_list(parsed_json(event.get("tool_calls"))),
        *as_list(parsed_json(message.get("tool_calls"))),
    ]
    return any(_call_arguments(call) is not None for call in calls)


def _call_arguments(call: Any) -> Any:
    if not isinstance(call, dict):
        return None
    function = call.get("function")
    if isinstance(function, dict):
        return function.get("arguments")
    return call["args"] if "args" in call else call.get("arguments")


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
            messages.extend(parts_message(message))
    return messages


def parts_message(message: Mapping[str, Any]) -> list[Message]:
    """A GenAI parts-based message as OpenAI messages (each tool response is one)."""
    role = _role(message.get("role"))
    parts = message.get("parts")
    if not isinstance(parts, list):
        plain = chat_message(message)
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
        tool_call(part.get("id"), part.get("name"), part.get("arguments"))
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


def indexed_messages(attrs: Mapping[str, Any], prefix: str) -> list[Message] | None:
    """`gen_ai.prompt.{i}.role/content/tool_call_id/tool_calls.{j}.id/name/arguments`."""
    entries = indexed(attrs, prefix)
    messages: list[Message] = []
    for entry in entries:
        message: Message = {"role": _role(entry.get("role")), "content": entry.get("content")}
        calls = [
            tool_call(call.get("id"), call.get("name"), call.get("arguments"))
            for call in as_list(entry.get("tool_calls"))
            if isinstance(call, dict)
        ]
        if calls:
            message["tool_calls"] = calls
        if entry.get("tool_call_id") is not None:
            message["tool_call_id"] = entry["tool_call_id"]
        messages.append(message)
    return messages or None


def _event_messages(span: OtlpSpan) -> list[Message] | None:
    if content_capture_off(span):
        return None
    messages: list[Message] = []
    for name, event in span.events:
        role = _MESSAGE_EVENTS.get(name)
        if role is None:
            continue
        message: Message = {"role": _role(event.get("role") or role)}
        message["content"] = _json_if_structured(event.get("content"))
        calls = tool_calls(parsed_json(event.get("tool_calls")))
        if calls:
            message["tool_calls"] = calls
        if role == "tool" and event.get("id") is not None:
            message["tool_call_id"] = event["id"]
        messages.append(message)
    return messages or None


def openinference_messages(attrs: Mapping[str, Any], prefix: str) -> list[Message] | None:
    """`llm.input_messages.{i}.message.role/content/contents/tool_calls/tool_call_id/name`."""
    messages: list[Message] = []
    for entry in indexed(attrs, prefix):
        raw = entry.get("message")
        if not isinstance(raw, dict):
            continue
        content: Any = raw.get("content")
        contents = as_list(raw.get("contents"))
        if content is None and contents:
            content = _openinference_contents(contents)
        message: Message = {"role": _role(raw.get("role")), "content": content}
        calls = [
            tool_call(call.get("id"), function.get("name"), function.get("arguments"))
            for wrapper in as_list(raw.get("tool_calls"))
            if isinstance(wrapper, dict)
            and isinstance(call := wrapper.get("tool_call"), dict)
            and isinstance(function := call.get("function"), dict)
        ]
        messages.append(_with_call_fields(message, calls, raw))
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


def _openai_request_messages(value: Any) -> list[Message] | None:
    """An OpenAI request's messages."""
    return _message_list(value.get("messages")) if isinstance(value, dict) else None


def _message_list(value: Any) -> list[Message] | None:
    if not isinstance(value, list) or not value:
        return None
    messages = [chat_message(entry) for entry in value if isinstance(entry, dict)]
    if len(messages) != len(value) or not all(messages):
        return None  # not a list of messages
    return [message for message in messages if message]


def chat_message(raw: Mapping[str, Any]) -> Message | None:
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
    calls = tool_calls(raw.get("tool_calls")) or tool_calls(
        additional.get("tool_calls") if isinstance(additional, dict) else None
    )
    return _with_call_fields(message, calls, raw)


def _with_call_fields(
    message: Message, calls: list[dict[str, Any]], raw: Mapping[str, Any]
) -> Message:
    """`message` with its tool calls, and the tool call it answers and its name as `raw` has
    them."""
    if calls:
        message["tool_calls"] = calls
    if raw.get("tool_call_id") is not None:
        message["tool_call_id"] = raw["tool_call_id"]
    if isinstance(raw.get("name"), str):
        message["name"] = raw["name"]
    return message


def _text_prompt(value: Any) -> list[Message] | None:
    """A prompt logged as plain text: one user message."""
    if isinstance(value, str) and value.strip() and not isinstance(parsed_json(value), dict | list):
        return [{"role": "user", "content": value}]
    return None


def _json_if_structured(value: Any) -> Any:
    parsed = parsed_json(value)
    return parsed if isinstance(parsed, list) else value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else orjson.dumps(value).decode()


def _role(role: Any) -> Any:
    return ROLES.get(role.lower(), role) if isinstance(role, str) else role
