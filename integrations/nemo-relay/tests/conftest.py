"""Real NeMo Relay events for the tests: a small agent run under the installed `nemo_relay`,
its events captured by a plain subscriber (the same dicts Relay's JSONL export writes)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Coroutine
from typing import Any

import nemo_relay
import pytest
from nemo_relay import LLMRequest, ScopeType

from flywheel_relay import CLIENT_ID_KEY

MODEL = "meta/llama-3.1-8b-instruct"
SUPPORT = "support agent"
CHECKER = "refund-checker"
TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "lookup_order", "parameters": {"type": "object"}},
}
_ids = itertools.count(1)


def completion(content: str | None, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


async def _llm(messages: list[dict[str, Any]], answer: dict[str, Any] | None) -> Any:
    async def provider(request: LLMRequest) -> Any:
        if answer is None:
            raise RuntimeError("upstream 503")
        return answer

    content: dict[str, Any] = {"model": MODEL, "messages": messages, "tools": [TOOL]}
    request = LLMRequest({}, content)
    return await nemo_relay.llm.execute("nim", request, provider, model_name=MODEL)


async def support_agent(*, fail_last: bool = False) -> None:
    """Run 1: a tool call, a nested agent's call, a final answer. Run 2: one call (or a
    failed one)."""
    question = [{"role": "user", "content": "Where is my refund for order 7?"}]
    call = {
        "id": "call_abc123",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order": 7}'},
    }
    with nemo_relay.scope.scope(SUPPORT, ScopeType.Agent, metadata={CLIENT_ID_KEY: "acme"}):
        await _llm(question, completion(None, [call]))

        async def lookup(args: Any) -> Any:
            with nemo_relay.scope.scope(CHECKER, ScopeType.Agent):
                await _llm([{"role": "user", "content": "Is refund 7 done?"}], completion("yes"))
            return nemo_relay.ToolExecutionResult({"order": 7, "refund": "sent"})

        await nemo_relay.tools.execute(
            "lookup_order", {"order": 7}, lookup, tool_call_id="call_abc123"
        )
        history: list[dict[str, Any]] = [
            *question,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_abc123", "content": '{"refund": "sent"}'},
        ]
        await _llm(history, completion("Your refund was sent yesterday."))
        nemo_relay.scope.event("answered", data={"turns": 2})
    # The agent survives its provider's error.
    with (
        nemo_relay.scope.scope(SUPPORT, ScopeType.Agent, metadata={CLIENT_ID_KEY: "acme"}),
        contextlib.suppress(RuntimeError),
    ):
        await _llm(question, None if fail_last else completion("Order 7 is refunded."))


def capture(run: Callable[[], Any], *extra: Callable[[Any], None]) -> list[dict[str, Any]]:
    """The events of `run()` as Relay hands them to subscribers, in order."""
    seen: list[dict[str, Any]] = []
    name = f"capture-{next(_ids)}"
    nemo_relay.subscribers.register(name, lambda event: seen.append(dict(event.to_dict())))
    try:
        asyncio.run(run())
        nemo_relay.subscribers.flush()
    finally:
        nemo_relay.subscribers.deregister(name)
    detached: list[dict[str, Any]] = json.loads(json.dumps(seen))  # as an export line reads
    return detached


Agent = Callable[[], Coroutine[Any, Any, None]]


@pytest.fixture(scope="session")
def agent() -> Agent:
    """The support agent, to run under a subscriber of the test's own."""
    return support_agent


@pytest.fixture(scope="session")
def relay_events() -> list[dict[str, Any]]:
    return capture(support_agent)


@pytest.fixture(scope="session")
def failing_events() -> list[dict[str, Any]]:
    return capture(lambda: support_agent(fail_last=True))


@pytest.fixture
def events(relay_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy each test may change."""
    return [json.loads(json.dumps(event)) for event in relay_events]
