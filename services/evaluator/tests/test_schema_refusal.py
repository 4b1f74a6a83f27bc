"""A server refusing the tool schemas (llama.cpp's 400 on a `\\d` in a `pattern`) ends the
evaluation with `schema_refused`, quoting it and pointing to `evaluation.tool_schema_compat`;
with that on, the patterns it is sent are ones it accepts. Other 400s stay failed records."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from flywheel_contracts.events import EvalErrorKind
from flywheel_contracts.run_config import WorkloadType
from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_evaluator.backends.native import NativeBackend
from flywheel_evaluator.clients.chat import ChatEndpoints
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.clients.refusals import is_schema_refusal
from flywheel_evaluator.config import ChatSettings, EvaluatorSettings
from flywheel_evaluator.errors import EvaluationFailed

from .fakes import FakeNmp, MemoryContext, completion, job, tool_record

pytestmark = pytest.mark.unit

LLAMA_CPP_REFUSAL = {
    "error": {
        "code": 400,
        "message": "JSON schema conversion failed:\nUnrecognized escape in pattern: \\d",
        "type": "invalid_request_error",
    }
}


@pytest.mark.parametrize(
    ("status", "body", "carried_tools", "expected"),
    [
        pytest.param(400, json.dumps(LLAMA_CPP_REFUSAL), True, True, id="llama-cpp"),
        pytest.param(400, "failed to parse GRAMMAR", True, True, id="grammar-any-case"),
        pytest.param(400, "invalid regex in tools[0]", True, True, id="regex"),
        pytest.param(400, "Unsupported JSON Schema keyword", True, True, id="schema"),
        pytest.param(400, "context length exceeded", True, False, id="other-400"),
        pytest.param(400, "bad pattern", False, False, id="no-tools-sent"),
        pytest.param(422, "schema validation failed", True, False, id="not-a-400"),
        pytest.param(500, "grammar crashed", True, False, id="server-error"),
    ],
)
def test_a_schema_refusal_is_a_400_about_the_schema_of_a_request_with_tools(
    status: int, body: str, carried_tools: bool, expected: bool
) -> None:
    assert is_schema_refusal(status, body, carried_tools=carried_tools) is expected


def patterned_record(i: int) -> dict[str, Any]:
    record = tool_record(i)
    record["request"]["tools"][0]["function"]["parameters"] = {
        "type": "object",
        "properties": {"zip": {"type": "string", "pattern": r"^\d{5}$"}},
    }
    return record


class GrammarServer:
    """A llama.cpp-like candidate: 400 when a tool schema's pattern holds a shorthand."""

    def __init__(self) -> None:
        self.requests = 0
        self.patterns: list[str] = []

    def __call__(self, body: dict[str, Any]) -> httpx.Response:
        self.requests += 1
        tools = body.get("tools") or []
        patterns = [
            prop["pattern"]
            for tool in tools
            for prop in tool["function"].get("parameters", {}).get("properties", {}).values()
            if "pattern" in prop
        ]
        self.patterns.extend(patterns)
        if any("\\d" in p for p in patterns):
            return httpx.Response(400, json=LLAMA_CPP_REFUSAL)
        i = int(body["messages"][-1]["content"].split()[-1])
        call = {"name": "get_weather", "arguments": {"city": f"city-{i}", "days": i % 5}}
        return completion({"content": None, "tool_calls": [{"function": call}]})


async def evaluate(fake: FakeNmp, ctx: MemoryContext) -> Any:
    config = EvaluatorSettings(chat=ChatSettings(concurrency=2, attempts=3, backoff_s=0.0))
    transport = fake.transport()
    async with NmpClient(fake.settings, transport=transport) as nmp:
        endpoints = ChatEndpoints(config.chat, transport=transport)
        try:
            backend = NativeBackend(DatasetFiles(nmp, config.eval_file), endpoints, config)
            return await backend.evaluate(ctx)
        finally:
            await endpoints.aclose()


def judge(_body: dict[str, Any]) -> httpx.Response:
    return completion({"content": "RATING: 1"})


async def test_refused_schemas_end_the_evaluation_quoting_the_server_and_the_way_out() -> None:
    server = GrammarServer()
    fake = FakeNmp(server, judge)
    ctx = MemoryContext(job(fake.upload([patterned_record(i) for i in range(6)])))
    with pytest.raises(EvaluationFailed) as failure:
        await evaluate(fake, ctx)
    assert failure.value.kind is EvalErrorKind.SCHEMA_REFUSED
    message = failure.value.message
    assert "Unrecognized escape in pattern" in message
    assert "evaluation.tool_schema_compat" in message
    assert "flywheel run --tool-schema-compat true" in message
    assert server.requests <= 2, "not retried, and no further records asked"


async def test_a_refusal_despite_the_rewrite_says_so() -> None:
    def refuse(_body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(400, text="grammar: unsupported format 'uuid'")

    fake = FakeNmp(refuse, judge)
    ctx = MemoryContext(job(fake.upload([patterned_record(0)]), tool_schema_compat=True))
    with pytest.raises(EvaluationFailed) as failure:
        await evaluate(fake, ctx)
    assert failure.value.kind is EvalErrorKind.SCHEMA_REFUSED
    assert "even with evaluation.tool_schema_compat on" in failure.value.message
    assert "unsupported format 'uuid'" in failure.value.message


async def test_with_the_compat_rewrite_the_server_gets_patterns_it_accepts() -> None:
    server = GrammarServer()
    fake = FakeNmp(server, judge)
    ctx = MemoryContext(
        job(fake.upload([patterned_record(i) for i in range(3)]), tool_schema_compat=True)
    )
    evaluated = await evaluate(fake, ctx)
    assert set(server.patterns) == {"^[0-9]{5}$"}
    assert all(s.value == 1.0 for s in evaluated.scores)


async def test_a_400_that_is_not_about_the_schema_stays_a_failed_record() -> None:
    def context_too_long(body: dict[str, Any]) -> httpx.Response:
        if body["messages"][-1]["content"] == "question 0":
            return httpx.Response(400, json={"error": "maximum context length exceeded"})
        return GrammarServer()(body)

    fake = FakeNmp(context_too_long, judge)
    evaluated = await evaluate(
        fake, MemoryContext(job(fake.upload([tool_record(i) for i in range(3)])))
    )
    names = next(s for s in evaluated.scores if s.name == "function_name_accuracy")
    assert (names.failed, names.value) == (1, 1.0)


async def test_a_generic_request_carries_no_tools_so_its_400_is_a_failed_record() -> None:
    records = [
        {
            "request": {"messages": [{"role": "user", "content": f"q{i}"}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": "a"}}]},
        }
        for i in range(3)
    ]

    def candidate(body: dict[str, Any]) -> httpx.Response:
        if body["messages"][-1]["content"] == "q0":
            return httpx.Response(400, text="output does not match the response schema")
        return completion({"content": "a"})

    fake = FakeNmp(candidate, judge)
    ctx = MemoryContext(job(fake.upload(records), WorkloadType.GENERIC))
    evaluated = await evaluate(fake, ctx)
    (similarity,) = evaluated.scores
    assert similarity.failed == 1
