"""How a candidate answered a tool-calling request: which dialect, and the calls it made.

Servers and models answer a tool call in one of two places. OpenAI's API puts it in the
message's `tool_calls`; many open models, served without a tool-call parser (or with one that
misses their format), write it into the message `content` instead. The strict metrics count
only `tool_calls` (what an OpenAI client acts on); the lenient ones also read the content, so
the two together tell a model that cannot call tools from a server that does not parse its calls.

Dialects:

- `tool_calls`: the message has a non-empty `tool_calls` list (the content is then ignored).
- `content_json`: no `tool_calls`, and the content holds the calls as JSON, in one of these forms:
  - the whole content is a call object or a JSON list of them;
  - fenced code blocks (```` ```json ```` or a bare ```` ``` ````) holding a call or a list, with
    prose around them allowed; every fenced block that starts with `{` or `[` must parse;
  - `<tool_call>...</tool_call>` tags (Qwen, Hermes), one call or a list in each, prose around
    them allowed; a last tag left open (generation stopped) is read up to the end.
  A call object is `{"name": ..., "arguments": {...}}`, with `parameters` accepted for
  `arguments` (Llama 3's JSON format), `arguments` given as an object or a JSON string and
  absent meaning `{}`; or OpenAI's own `{"type": "function", "function": {...}}`. An object
  `{"tool_calls": [...]}` holds a list of them.
- `malformed`: no `tool_calls`, and content that looks like an attempted call (a `<tool_call>`
  tag, a ```` ```json ```` fence, JSON-looking content, or `"name"` next to `"arguments"` or
  `"parameters"`) but yields no call in the forms above: broken JSON, prose around bare JSON,
  an object without a string `name`, an empty list.
- `none`: no `tool_calls` and content that is not an attempted call (prose, or nothing).
"""

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Dialect(StrEnum):
    TOOL_CALLS = "tool_calls"
    CONTENT_JSON = "content_json"
    NONE = "none"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Answer:
    dialect: Dialect
    calls: list[Any] = field(default_factory=list)
    """The calls in OpenAI's `tool_calls` form, for toolcalls.parse_tool_calls."""


_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_FENCED = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)


def read_answer(content: Any, tool_calls: Any) -> Answer:
    """The dialect of an assistant message and the calls it made."""
    if isinstance(tool_calls, list) and tool_calls:
        return Answer(Dialect.TOOL_CALLS, tool_calls)
    text = content.strip() if isinstance(content, str) else ""
    if not text:
        return Answer(Dialect.NONE)
    payloads = _payloads(text)
    if not payloads:
        return Answer(Dialect.MALFORMED if _looks_like_a_call(text) else Dialect.NONE)
    calls: list[Any] = []
    for payload in payloads:
        parsed = _calls(payload)
        if parsed is None:
            return Answer(Dialect.MALFORMED)
        calls.extend(parsed)
    return Answer(Dialect.CONTENT_JSON, calls)


def _payloads(text: str) -> list[str]:
    """The JSON texts that should hold the calls, by the first form the content uses."""
    tagged = [body.strip() for body in _TAGGED.findall(text)]
    if tagged:
        return tagged
    fenced = [body.strip() for body in _FENCED.findall(text)]
    fenced = [body for body in fenced if body.startswith(("{", "["))]
    if fenced:
        return fenced
    return [text] if text.startswith(("{", "[")) else []


def _looks_like_a_call(text: str) -> bool:
    lowered = text.lower()
    if "<tool_call" in lowered or "```json" in lowered:
        return True
    return '"name"' in text and ('"arguments"' in text or '"parameters"' in text)


def _calls(payload: str) -> list[Any] | None:
    """The calls of one JSON payload, or None when it is not (only) calls."""
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    entries = value if isinstance(value, list) else [value]
    calls = [_call(entry) for entry in entries]
    if not calls or any(call is None for call in calls):
        return None
    return calls


def _call(entry: Any) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        return None
    nested = entry.get("function")
    function: dict[str, Any] = nested if isinstance(nested, dict) else entry
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return None
    arguments = function.get("arguments", function.get("parameters"))
    return {"type": "function", "function": {"name": name, "arguments": arguments}}
