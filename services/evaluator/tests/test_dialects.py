"""Where an answer put its tool calls (dialects.py), and the strict and lenient metrics that
follow: strict counts `tool_calls` only, lenient also the calls written as JSON in the content."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_evaluator.api import _verdict
from flywheel_evaluator.backends.native import NativeBackend
from flywheel_evaluator.clients.chat import ChatEndpoints
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.config import ChatSettings, EvaluatorSettings
from flywheel_evaluator.dialects import Dialect, read_answer
from flywheel_evaluator.toolcalls import calls_match, parse_tool_calls

from .fakes import FakeNmp, MemoryContext, completion, job, tool_record

pytestmark = pytest.mark.unit

CALL = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}
REFERENCE = parse_tool_calls([{"function": CALL}])
OPENAI_CALL = {
    "id": "c1",
    "type": "function",
    "function": {**CALL, "arguments": '{"city": "Paris", "days": 3}'},
}


def matches_reference(content: str | None, tool_calls: Any = None) -> bool:
    return calls_match(REFERENCE, parse_tool_calls(read_answer(content, tool_calls).calls))


def test_tool_calls_are_the_tool_calls_dialect_whatever_the_content_says() -> None:
    answer = read_answer('{"name": "other", "arguments": {}}', [OPENAI_CALL])
    assert answer.dialect is Dialect.TOOL_CALLS
    assert answer.calls == [OPENAI_CALL]
    assert matches_reference("ignored", [OPENAI_CALL])


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(json.dumps(CALL), id="object"),
        pytest.param(f"  {json.dumps([CALL])}\n", id="list"),
        pytest.param(
            json.dumps({"name": "get_weather", "arguments": json.dumps(CALL["arguments"])}),
            id="arguments-as-json-string",
        ),
        pytest.param(
            json.dumps({"name": "get_weather", "parameters": CALL["arguments"]}),
            id="llama-parameters",
        ),
        pytest.param(json.dumps({"type": "function", "function": CALL}), id="openai-shaped"),
        pytest.param(json.dumps({"tool_calls": [{"function": CALL}]}), id="tool-calls-wrapper"),
        pytest.param(f"Here you go:\n```json\n{json.dumps(CALL)}\n```\nDone.", id="json-fence"),
        pytest.param(f"```\n{json.dumps([CALL])}\n```", id="bare-fence-with-list"),
        pytest.param(f"<tool_call>\n{json.dumps(CALL)}\n</tool_call>", id="qwen-tag"),
        pytest.param(
            f"<think>the user wants weather</think>\n<tool_call>{json.dumps(CALL)}",
            id="qwen-tag-left-open-after-reasoning",
        ),
    ],
)
def test_json_in_the_content_is_the_content_json_dialect(content: str) -> None:
    answer = read_answer(content, None)
    assert answer.dialect is Dialect.CONTENT_JSON
    assert matches_reference(content)


def test_every_tagged_call_counts_as_a_parallel_call() -> None:
    other = {"name": "get_time", "arguments": {"zone": "CET"}}
    content = (
        f"<tool_call>{json.dumps(CALL)}</tool_call>\n<tool_call>{json.dumps(other)}</tool_call>"
    )
    answer = read_answer(content, [])
    assert answer.dialect is Dialect.CONTENT_JSON
    assert [c["function"]["name"] for c in answer.calls] == ["get_weather", "get_time"]


def test_a_call_without_arguments_has_empty_arguments() -> None:
    answer = read_answer('{"name": "list_cities"}', None)
    assert answer.dialect is Dialect.CONTENT_JSON
    assert parse_tool_calls(answer.calls) == parse_tool_calls(
        [{"function": {"name": "list_cities", "arguments": {}}}]
    )


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('{"name": "get_weather", "arguments": {"city": "Paris"', id="truncated"),
        pytest.param('<tool_call>{"name": get_weather}</tool_call>', id="tag-with-bad-json"),
        pytest.param("```json\nget_weather(city='Paris')\n```", id="json-fence-without-json"),
        pytest.param('{"city": "Paris"}', id="object-without-name"),
        pytest.param("[]", id="empty-list"),
        pytest.param(f"I will call {json.dumps(CALL)} now", id="prose-around-bare-json"),
        pytest.param('[get_weather(city="Paris")]', id="pythonic-call"),
        pytest.param(
            f"```json\n{json.dumps(CALL)}\n```\n```json\n{{broken\n```", id="one-fence-broken"
        ),
    ],
)
def test_an_attempted_call_that_does_not_parse_is_malformed(content: str) -> None:
    answer = read_answer(content, None)
    assert answer.dialect is Dialect.MALFORMED
    assert answer.calls == []


@pytest.mark.parametrize(
    ("content", "tool_calls"),
    [
        pytest.param(None, None, id="nothing"),
        pytest.param("   ", [], id="blank"),
        pytest.param("It is sunny in Paris today.", None, id="prose"),
        pytest.param("```python\nprint('hi')\n```", None, id="other-code"),
    ],
)
def test_no_attempted_call_is_the_none_dialect(content: str | None, tool_calls: Any) -> None:
    assert read_answer(content, tool_calls).dialect is Dialect.NONE


# The lenient and strict metrics, through the native backend.


def answers_by_question(messages: dict[str, dict[str, Any]]) -> Any:
    def answer(body: dict[str, Any]) -> httpx.Response:
        return completion(messages[body["messages"][-1]["content"]])

    return answer


async def test_lenient_metrics_read_the_content_where_strict_ones_do_not() -> None:
    records = [tool_record(i, city="Paris") for i in range(4)]

    def right(i: int) -> dict[str, Any]:  # tool_record(i)'s reference call
        return {"name": "get_weather", "arguments": {"city": "Paris", "days": i}}

    as_tool_call = {"function": {**right(0), "arguments": json.dumps(right(0)["arguments"])}}
    fake = FakeNmp(
        answers_by_question(
            {
                "question 0": {"content": None, "tool_calls": [as_tool_call]},
                "question 1": {"content": f"<tool_call>{json.dumps(right(1))}</tool_call>"},
                "question 2": {"content": '{"name": "get_weather", "arguments": '},
                "question 3": {"content": "Paris will be sunny."},
            }
        ),
        lambda _body: completion({"content": "RATING: 1"}),
    )
    ctx = MemoryContext(job(fake.upload(records)))
    config = EvaluatorSettings(chat=ChatSettings(concurrency=2, attempts=1))
    transport = fake.transport()
    async with NmpClient(fake.settings, transport=transport) as nmp:
        endpoints = ChatEndpoints(config.chat, transport=transport)
        try:
            backend = NativeBackend(DatasetFiles(nmp, config.eval_file), endpoints, config)
            evaluated = await backend.evaluate(ctx)
        finally:
            await endpoints.aclose()

    values = {s.name: s.value for s in evaluated.scores}
    assert values == {
        "function_name_accuracy": 0.25,
        "function_name_and_args_accuracy": 0.25,
        "tool_calling_correctness": 0.25,
        "function_name_accuracy_lenient": 0.5,
        "function_name_and_args_accuracy_lenient": 0.5,
    }
    lenient = next(s for s in evaluated.scores if s.name == "function_name_accuracy_lenient")
    assert (lenient.n, lenient.failed) == (4, 0)
    assert lenient.ci_low < 0.5 < lenient.ci_high  # a Wilson interval, as for any proportion
    dialects = {i: r.dialect for i, r in ctx.saved.items()}
    assert dialects == {
        0: Dialect.TOOL_CALLS,
        1: Dialect.CONTENT_JSON,
        2: Dialect.MALFORMED,
        3: Dialect.NONE,
    }
    assert ctx.saved[1].model_dump(mode="json")["dialect"] == "content_json"
    assert "(calls: content_json)" in _verdict(ctx.saved[1])
    assert "(calls:" not in _verdict(ctx.saved[0])
