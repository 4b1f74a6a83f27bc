"""Training records as the model must learn them: the request the server renders (messages and
tools, through the model's own chat template), and the answer as the model must write it for
llama-server to parse it back into `tool_calls`.

Qwen2.5's template writes each call as `<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>`
after the assistant's content, one per line. The trainer tokenizes the answer with the tags
spelled as ordinary text, not as Qwen's `<tool_call>` special token: trained on the special
token, the model learned to emit `<|im_start|>` instead (their output embeddings are nearly
parallel). llama-server parses the tags from the generated text, so either spelling comes back
as `tool_calls`. Pure: no tokenizer here.

The tools are written as llama-server hands them to the template (`served_tools`): it parses a
request's tools and rebuilds each as `{"type", "function": {"name", "description",
"parameters"}}`, whatever order the client's keys came in. Training files keep the keys of the
logged request (sorted, once stored), so without this every trained prompt would list its tools
in an order no served prompt has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


@dataclass(frozen=True)
class TrainingExample:
    """One record: the request (rendered by the chat template with a generation prompt) and
    the answer text the model is trained to write after it."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    completion: str

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "tools": self.tools, "completion": self.completion}


def _arguments(raw: Any) -> Any:
    # Training files carry the answer's arguments as objects; OpenAI requests as JSON strings.
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _calls(message: dict[str, Any]) -> list[tuple[str, Any]]:
    calls = []
    for call in message.get("tool_calls") or ():
        function = call.get("function", call) if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            calls.append((function["name"], _arguments(function.get("arguments", {}))))
    return calls


def render_call(name: str, arguments: Any) -> str:
    """One call as Qwen2.5's template renders it (`tojson` keeps non-ASCII, `, ` and `: `)."""
    body = f'{{"name": "{name}", "arguments": {json.dumps(arguments, ensure_ascii=False)}}}'
    return f"{TOOL_CALL_OPEN}\n{body}\n{TOOL_CALL_CLOSE}"


def completion_text(answer: dict[str, Any]) -> str:
    """The assistant turn after `<|im_start|>assistant\\n`, up to (not including) `<|im_end|>`:
    its content, then each call on a line of its own."""
    content = answer.get("content")
    text = content if isinstance(content, str) else ""
    for name, arguments in _calls(answer):
        text += ("\n" if text else "") + render_call(name, arguments)
    return text


def served_tools(tools: list[Any]) -> list[Any]:
    """The tools in the form and key order llama-server renders them in: a function's name, its
    description ("" when absent) and its parameters (`{}` when absent), in that order; the
    parameters' own keys as sent. A tool of another shape is kept as it is."""
    served: list[Any] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not (
            isinstance(function, dict)
            and tool.get("type") == "function"
            and isinstance(function.get("name"), str)
        ):
            served.append(tool)
            continue
        served.append(
            {
                "type": "function",
                "function": {
                    "name": function["name"],
                    "description": function.get("description", ""),
                    "parameters": function.get("parameters", {}),
                },
            }
        )
    return served


def _history_message(message: dict[str, Any]) -> dict[str, Any]:
    # The template writes a past call's arguments with `tojson`: it wants them as objects.
    if not message.get("tool_calls"):
        return message
    calls = [
        {"type": "function", "function": {"name": name, "arguments": arguments}}
        for name, arguments in _calls(message)
    ]
    return {**message, "tool_calls": calls}


def training_example(record: dict[str, Any]) -> TrainingExample | None:
    """`{"messages": request + [answer], "tools": [...]}` (the training file Flywheel uploads)
    as an example; None for a record without a final assistant answer worth learning."""
    messages = record.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return None
    answer = messages[-1]
    if not isinstance(answer, dict) or answer.get("role") != "assistant":
        return None
    completion = completion_text(answer)
    if not completion:
        return None
    tools = record.get("tools")
    return TrainingExample(
        messages=[_history_message(m) for m in messages[:-1] if isinstance(m, dict)],
        tools=served_tools(tools) if isinstance(tools, list) and tools else None,
        completion=completion,
    )


def training_examples(records: Iterable[dict[str, Any]]) -> Iterator[TrainingExample]:
    for record in records:
        example = training_example(record)
        if example is not None:
            yield example
