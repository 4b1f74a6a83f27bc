"""The chat completion a span records: its choices, finish reasons and usage.

The choices come from the first convention that has any, as the request's messages do, but
each side is read on its own: a span may record its request in one convention and its output
in another, or an answer in pieces (NAT's `chat_responses` lack the answer's tool calls, which
only `output.value` holds).
"""

from collections.abc import Callable, Mapping
from typing import Any

from flywheel_ingest.producers.otlp.messages import (
    CAPTURE_OFF,
    Message,
    chat_message,
    content_capture_off,
    gen_ai_structured,
    indexed_messages,
    openinference_messages,
    parts_message,
)
from flywheel_ingest.producers.otlp.nat import (
    nat_metadata,
    nat_response_field,
    nat_tool_calls,
    split_nat_tool_calls,
)
from flywheel_ingest.producers.otlp.span import OtlpSpan, incomplete
from flywheel_ingest.producers.otlp.tools import tool_calls
from flywheel_ingest.producers.otlp.values import as_list, first_text, indexed, integer, parsed_json

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

_OUTPUT_SOURCES = (
    "gen_ai.output.messages, gen_ai.completion.*, gen_ai.choice events, "
    "llm.output_messages.*, output.value"
)
_KEYS_SHOWN = 5
_KEY_SHOWN = 40


def chat_completion(span: OtlpSpan, request_model: str | None) -> dict[str, Any]:
    """The response; its model is the request's when the span names no other."""
    structured = gen_ai_structured(span)
    output = _verbatim_response(span)
    nat = nat_metadata(span)
    readers: tuple[Callable[[], list[dict[str, Any]] | None], ...] = (
        lambda: _gen_ai_choices(structured.get("gen_ai.output.messages")),
        lambda: _indexed_choices(span.attributes),
        lambda: _event_choices(span),
        lambda: _openai_choices(output),
        lambda: _message_choices(openinference_messages(span.attributes, "llm.output_messages.")),
        lambda: _nat_choices(nat.get("chat_responses"), span.attribute("output.value")),
        lambda: _text_choices(span.attribute("output.value")),
    )
    for read in readers:
        choices = read()
        if choices:
            break
    else:
        failed = f" (status {span.status})" if span.status else ""
        found = _instead_of_output(span)
        incomplete(span, f"carries no output{failed}: none of {_OUTPUT_SOURCES}{found}")
    _finish_reasons(choices, span)
    response: dict[str, Any] = {}
    response_id = first_text(
        span.attribute("gen_ai.response.id"),
        output.get("id") if isinstance(output, dict) else None,
        nat_response_field(nat, "id"),
    )
    if response_id:
        response["id"] = response_id
    response["object"] = "chat.completion"
    response["created"] = span.start_ns // 1_000_000_000
    model = first_text(
        span.attribute("gen_ai.response.model"),
        output.get("model") if isinstance(output, dict) else None,
        nat_response_field(nat, "model_name"),
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
        converted = parts_message({**message, "role": message.get("role") or "assistant"})
        if converted:
            choices.append(_choice(len(choices), converted[0], message.get("finish_reason")))
    return choices or None


def _indexed_choices(attrs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    messages = indexed_messages(attrs, "gen_ai.completion.")
    if not messages:
        return None
    entries = indexed(attrs, "gen_ai.completion.")
    return [
        _choice(index, message, entry.get("finish_reason"))
        for index, (message, entry) in enumerate(zip(messages, entries, strict=True))
    ]


def _event_choices(span: OtlpSpan) -> list[dict[str, Any]] | None:
    if content_capture_off(span):
        return None
    choices: list[dict[str, Any]] = []
    for name, event in span.events:
        if name != "gen_ai.choice":
            continue
        raw = parsed_json(event.get("message"))
        message = chat_message({"role": "assistant", **raw} if isinstance(raw, dict) else {})
        if message is None:
            message = {"role": "assistant", "content": None}
        calls = tool_calls(parsed_json(event.get("tool_calls")))
        if calls and "tool_calls" not in message:
            message["tool_calls"] = calls
        index = integer(event.get("index"))
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
        key[len(prefix) :]: parsed_json(value)
        for key, value in span.attributes.items()
        if key.startswith(prefix) and "." not in key[len(prefix) :]
    }
    if isinstance(relay.get("choices"), list):
        return relay
    return parsed_json(span.attribute("output.value"))


def _openai_choices(output: Any) -> list[dict[str, Any]] | None:
    if not isinstance(output, dict) or not isinstance(output.get("choices"), list):
        return None
    choices = [
        {**choice, "finish_reason": _finish_reason(choice.get("finish_reason"))}
        for choice in output["choices"]
        if isinstance(choice, dict)
    ]
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
        message = chat_message(raw) if isinstance(raw, dict) else None
        if message is None:
            message = {"role": "assistant", "content": generation.get("text")}
        message["role"] = "assistant"
        if "tool_calls" not in message and len(responses) == 1:
            calls = nat_tool_calls(output_value)
            if calls:
                message["tool_calls"] = calls
        metadata = raw.get("response_metadata") if isinstance(raw, dict) else None
        info = generation.get("generation_info")
        finish = first_text(
            metadata.get("finish_reason") if isinstance(metadata, dict) else None,
            info.get("finish_reason") if isinstance(info, dict) else None,
        )
        choices.append(_choice(len(choices), message, finish))
    return choices or None


def _text_choices(output_value: Any) -> list[dict[str, Any]] | None:
    """An answer logged as plain text. JSON that no reader above understood is no answer (an
    error, an agent's own output), as JSON in `input.value` is no prompt."""
    if not isinstance(output_value, str) or isinstance(parsed_json(output_value), dict | list):
        return None
    content, calls = split_nat_tool_calls(output_value)
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
    """Fill a choice's missing finish reason from `gen_ai.response.finish_reasons` (listed in
    the order of the choices' indexes, so matched by a choice's `index`, else its position) or
    OpenInference's `llm.finish_reason` (Relay writes it); unknown stays unset."""
    listed = as_list(span.attribute("gen_ai.response.finish_reasons"))
    single = span.attribute("llm.finish_reason")
    for position, choice in enumerate(choices):
        if choice.get("finish_reason") is None:
            index = choice.get("index")
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                index = position
            given = listed[index] if index < len(listed) else single
            choice["finish_reason"] = _finish_reason(given)


def _finish_reason(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return FINISH_REASONS.get(value.lower(), value.lower())


def _instead_of_output(span: OtlpSpan) -> str:
    """What a span without an output holds in its place, to name in the refusal."""
    notes = []
    document = parsed_json(span.attribute("output.value"))
    if isinstance(document, dict | list):
        notes.append(f"output.value holds JSON that is no answer: {_described(document)}")
    if content_capture_off(span):
        notes.append(CAPTURE_OFF)
    return "".join(f"; {note}" for note in notes)


def _described(document: dict[str, Any] | list[Any]) -> str:
    if isinstance(document, list):
        return f"an array of length {len(document)}"
    if not document:
        return "an empty object"
    keys = [key[:_KEY_SHOWN] for key in list(document)[:_KEYS_SHOWN]]
    more = ", ..." if len(document) > _KEYS_SHOWN else ""
    return f"an object with keys {', '.join(keys)}{more}"


def _usage(span: OtlpSpan, output: Any) -> dict[str, int] | None:
    if isinstance(output, dict) and isinstance(output.get("usage"), dict):
        usage: dict[str, int] = output["usage"]
        return usage
    prompt = integer(
        _first_present(
            span.attribute("gen_ai.usage.input_tokens"),
            span.attribute("gen_ai.usage.prompt_tokens"),
            span.attribute("llm.token_count.prompt"),
        )
    )
    completion = integer(
        _first_present(
            span.attribute("gen_ai.usage.output_tokens"),
            span.attribute("gen_ai.usage.completion_tokens"),
            span.attribute("llm.token_count.completion"),
        )
    )
    if prompt is None and completion is None:
        return None
    total = integer(span.attribute("llm.token_count.total"))
    return {
        "prompt_tokens": prompt or 0,
        "completion_tokens": completion or 0,
        "total_tokens": total if total else (prompt or 0) + (completion or 0),
    }


def _first_present(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)
