"""OpenAI-format responses of the NIM proxy, with a cheap token estimate for usage."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from flywheel_nmp_emulator.draws import short_hash
from flywheel_nmp_emulator.models.examples import content_text
from flywheel_nmp_emulator.models.instruct import Reply

# About four characters per token for English text and JSON, the usual rule of thumb.
CHARS_PER_TOKEN = 4


def estimate_tokens(chars: int) -> int:
    return max(1, -(-chars // CHARS_PER_TOKEN))


def prompt_chars(messages: Sequence[dict[str, Any]], tools: Any) -> int:
    tools_chars = len(orjson.dumps(tools)) if tools else 0
    return tools_chars + sum(len(content_text(m.get("content"))) + 4 for m in messages)


def completion_chars(reply: Reply) -> int:
    if reply.tool_calls:
        return sum(
            len(c["function"]["name"]) + len(c["function"]["arguments"]) for c in reply.tool_calls
        )
    return len(reply.content or "")


def chat_response(model: str, reply: Reply, prompt_chars: int) -> dict[str, Any]:
    prompt_tokens = estimate_tokens(prompt_chars)
    completion_tokens = estimate_tokens(completion_chars(reply))
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return {
        "id": "chatcmpl-" + short_hash(model, prompt_chars, reply.content, time.time_ns(), size=12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
