"""One raw log line in, one normalized record or one refusal out.

The checks run in the order documented on `RejectReason` and the first failure decides the
reason. A record in the blueprint's log format (workload_id, client_id, timestamp, OpenAI
request and response) passes as it is; anything else it carries (metadata, latency, tags) is kept.
Normalization: `timestamp` becomes millisecond ISO 8601 in UTC, and every tool call's
`function.arguments` becomes a JSON object (the blueprint's AIVA form), whether it was logged as an
object or as a string holding one.

Quality rules, for what real producers emit: an answer must say something (content or tool
calls: an empty assistant turn is nothing to learn from or score against), and an answer whose
finish reason is `tool_calls` must carry them (the producer lost them on the way). Empty
assistant turns inside the prompt's history are kept: the prompt is what production sent.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

import orjson
from pydantic import TypeAdapter, ValidationError

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.primitives import Identifier
from flywheel_ingest.timestamps import InvalidTimestamp, format_timestamp, parse_timestamp

REQUIRED_FIELDS = ("workload_id", "client_id", "timestamp", "request", "response")
IDENTITY_FIELDS = ("workload_id", "client_id")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

_IDENTIFIER = TypeAdapter(Identifier)
_QUOTE_MAX = 60


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: RejectReason
    message: str


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A valid record: `fields` is the whole normalized record, ready to be stored."""

    workload_id: str
    client_id: str
    fields: dict[str, Any]


class _Refused(Exception):
    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.refusal = Refusal(reason, message)


def _refuse(reason: RejectReason, message: str) -> NoReturn:
    raise _Refused(reason, message)


def validate(raw: bytes, max_bytes: int) -> LogRecord | Refusal:
    """Check and normalize one line (the message value, without its newline)."""
    try:
        return _validate(raw, max_bytes)
    except _Refused as refused:
        return refused.refusal


def _validate(raw: bytes, max_bytes: int) -> LogRecord:
    if len(raw) > max_bytes:
        _refuse(RejectReason.OVERSIZE, f"the line is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        _refuse(RejectReason.INVALID_JSON, f"not valid JSON: {exc}")
    if not isinstance(record, dict):
        _refuse(RejectReason.NOT_AN_OBJECT, f"the line is a JSON {_kind(record)}, not an object")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        _refuse(RejectReason.MISSING_FIELD, f"missing required field(s): {', '.join(missing)}")
    _check_types(record)
    try:
        instant = parse_timestamp(record["timestamp"])
    except InvalidTimestamp as exc:
        _refuse(RejectReason.INVALID_TIMESTAMP, f"timestamp: {exc}")
    request, response = record["request"], record["response"]
    if request.get("messages") == []:
        _refuse(RejectReason.EMPTY_MESSAGES, "request.messages is empty")
    if response.get("choices") == []:
        _refuse(RejectReason.EMPTY_CHOICES, "response.choices is empty")
    _check_request(request)
    _check_response(response)
    _check_answers(response)
    _normalize_tool_arguments(request, response)
    record["timestamp"] = format_timestamp(instant)
    return LogRecord(record["workload_id"], record["client_id"], record)


def _check_types(record: dict[str, Any]) -> None:
    for name in IDENTITY_FIELDS:
        value = record[name]
        if not isinstance(value, str):
            _refuse(RejectReason.WRONG_TYPE, f"{name} must be a string, got {_kind(value)}")
        if not _is_identifier(value):
            # RecordsIngested and the datasets' NMP names accept only these characters.
            _refuse(
                RejectReason.WRONG_TYPE,
                f"{name} must be 1-256 characters among letters, digits and _.:@/+-, "
                f"got {_quote(value)}",
            )
    timestamp = record["timestamp"]
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float | str):
        _refuse(
            RejectReason.WRONG_TYPE,
            "timestamp must be a number (epoch seconds or milliseconds) or an ISO 8601 string, "
            f"got {_kind(timestamp)}",
        )
    for name in ("request", "response"):
        if not isinstance(record[name], dict):
            _refuse(RejectReason.WRONG_TYPE, f"{name} must be an object, got {_kind(record[name])}")


def _check_request(request: dict[str, Any]) -> None:
    if "messages" not in request:
        _not_openai("request.messages is missing")
    messages = request["messages"]
    if not isinstance(messages, list):
        _not_openai(f"request.messages must be an array of messages, got {_kind(messages)}")
    for index, message in enumerate(messages):
        _check_message(message, f"request.messages[{index}]", role_required=True)
    tools = request.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        _not_openai(f"request.tools must be an array, got {_kind(tools)}")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            _not_openai(f"request.tools[{index}] must be an object with a type")
        if tool["type"] == "function" and not _has_name(tool.get("function")):
            _not_openai(f"request.tools[{index}].function must be an object with a name")


def _check_response(response: dict[str, Any]) -> None:
    if "choices" not in response:
        _not_openai("response.choices is missing")
    choices = response["choices"]
    if not isinstance(choices, list):
        _not_openai(f"response.choices must be an array, got {_kind(choices)}")
    for index, choice in enumerate(choices):
        path = f"response.choices[{index}]"
        if not isinstance(choice, dict) or "message" not in choice:
            _not_openai(f"{path} must be an object with a message")
        # A choice's message may leave out its role; a prompt's messages may not.
        _check_message(choice["message"], f"{path}.message", role_required=False)


def _check_answers(response: dict[str, Any]) -> None:
    for index, choice in enumerate(response["choices"]):
        message = choice["message"]
        calls = message.get("tool_calls")
        path = f"response.choices[{index}]"
        if choice.get("finish_reason") == "tool_calls" and not calls:
            _refuse(
                RejectReason.TOOL_CALLS_MISSING,
                f"{path}.finish_reason is tool_calls but the message carries no tool call",
            )
        if not calls and not _has_content(message.get("content")):
            _refuse(
                RejectReason.EMPTY_RESPONSE,
                f"{path}.message has neither content nor tool calls (an empty assistant turn)",
            )


def _has_content(content: object) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    return isinstance(content, list) and any(
        part.get("type") != "text" or bool(str(part.get("text") or "").strip())
        for part in content
        if isinstance(part, dict)
    )


def _check_message(message: object, path: str, *, role_required: bool) -> None:
    if not isinstance(message, dict):
        _not_openai(f"{path} must be an object, got {_kind(message)}")
    role = message.get("role")
    if role is None:
        if role_required:
            _not_openai(f"{path}.role is missing")
    elif not isinstance(role, str) or role not in ROLES:
        _not_openai(f"{path}.role must be one of {', '.join(sorted(ROLES))}, got {_quote(role)}")
    content = message.get("content")
    if not (
        content is None
        or isinstance(content, str)
        or (isinstance(content, list) and all(isinstance(part, dict) for part in content))
    ):
        _not_openai(f"{path}.content must be a string, an array of content parts or null")
    calls = message.get("tool_calls")
    if calls is None:
        return
    if not isinstance(calls, list):
        _not_openai(f"{path}.tool_calls must be an array, got {_kind(calls)}")
    for index, call in enumerate(calls):
        if not isinstance(call, dict) or not _has_name(call.get("function")):
            _not_openai(f"{path}.tool_calls[{index}] must be an object whose function has a name")


def _normalize_tool_arguments(request: dict[str, Any], response: dict[str, Any]) -> None:
    for path, message in _messages(request, response):
        for index, call in enumerate(message.get("tool_calls") or ()):
            function = call["function"]
            where = f"{path}.tool_calls[{index}].function.arguments"
            if "arguments" not in function:
                _refuse(RejectReason.INVALID_TOOL_ARGUMENTS, f"{where} is missing")
            arguments = function["arguments"]
            if isinstance(arguments, dict):
                continue
            if not isinstance(arguments, str):
                _refuse(
                    RejectReason.INVALID_TOOL_ARGUMENTS,
                    f"{where} must be a JSON object or a string holding one, "
                    f"got {_kind(arguments)}",
                )
            function["arguments"] = _parse_arguments(arguments, where)


def _parse_arguments(text: str, where: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        _refuse(RejectReason.INVALID_TOOL_ARGUMENTS, f"{where} is not JSON: {_quote(text)}")
    if not isinstance(parsed, dict):
        _refuse(
            RejectReason.INVALID_TOOL_ARGUMENTS,
            f"{where} holds a JSON {_kind(parsed)}, not an object: {_quote(text)}",
        )
    return parsed


def _messages(
    request: dict[str, Any], response: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    for index, message in enumerate(request["messages"]):
        yield f"request.messages[{index}]", message
    for index, choice in enumerate(response["choices"]):
        yield f"response.choices[{index}].message", choice["message"]


def _not_openai(message: str) -> NoReturn:
    _refuse(RejectReason.NOT_OPENAI_FORMAT, message)


def _has_name(function: object) -> bool:
    return (
        isinstance(function, dict)
        and isinstance(function.get("name"), str)
        and bool(function["name"])
    )


@lru_cache(maxsize=4096)  # a deployment has a handful of workloads and clients
def _is_identifier(value: str) -> bool:
    try:
        _IDENTIFIER.validate_python(value)
    except ValidationError:
        return False
    return True


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE_MAX else f"{text[: _QUOTE_MAX - 3]}..."
