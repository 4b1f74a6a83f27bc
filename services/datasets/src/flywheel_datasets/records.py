"""Reading the parts of a logged record (blueprint log format: workload_id, client_id, timestamp,
OpenAI `request` and `response`, optional `metadata`) that the rules, the split and ICL use.

Functions here assume a record that passed `rules.check`, so the shape is known.
"""

import hashlib
from typing import Any

Record = dict[str, Any]
NO_TOOL = "no_tool"


def content_text(content: object) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def user_turns(record: Record) -> list[str]:
    """The text of every user message with content, in order (the blueprint's dedup key)."""
    return [
        text
        for message in record["request"]["messages"]
        if message.get("role") == "user" and (text := content_text(message.get("content")))
    ]


def response_message(record: Record) -> dict[str, Any]:
    message: dict[str, Any] = record["response"]["choices"][0]["message"]
    return message


def tool_calls(record: Record) -> list[dict[str, Any]]:
    """The tool calls of the first choice; empty for a plain answer."""
    calls = response_message(record).get("tool_calls")
    return calls if isinstance(calls, list) else []


def first_tool_name(record: Record) -> str:
    """The stratification label: the first called function's name, or `no_tool`."""
    calls = tool_calls(record)
    if calls:
        name = calls[0].get("function", {}).get("name")
        if isinstance(name, str) and name:
            return name
    return NO_TOOL


def conversation_key(record: Record, turns: list[str]) -> str:
    """What keeps a conversation's records on one side of the split.

    `metadata.conversation_id` when the application logs one. Without it, the first user turn:
    every later turn of a conversation repeats it as history, so the records of one
    conversation still land together (and unrelated records that open with the very same
    words are kept together too, which is harmless).
    """
    metadata = record.get("metadata")
    if isinstance(metadata, dict):
        conversation = metadata.get("conversation_id")
        if isinstance(conversation, str | int) and str(conversation):
            return f"id:{conversation}"
    opening = turns[0] if turns else ""
    return "first-turn:" + hashlib.blake2b(opening.encode(), digest_size=12).hexdigest()


def exact_key(turns: list[str]) -> bytes:
    """A digest of the user turns as logged: equal turns, equal key."""
    return hashlib.blake2b("\x1e".join(turns).encode(), digest_size=16).digest()
