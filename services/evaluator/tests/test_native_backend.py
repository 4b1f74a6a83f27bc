"""The native backend on a fake candidate and judge: scores, exclusion of failed requests,
retries, resumption from saved records and the failure budget."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from flywheel_contracts.events import EvalErrorKind
from flywheel_contracts.run_config import WorkloadType
from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_evaluator.backends.native import NativeBackend
from flywheel_evaluator.clients.chat import ChatEndpoints
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.config import ChatSettings, EvaluatorSettings
from flywheel_evaluator.errors import EvaluationFailed
from flywheel_evaluator.models import RecordResult

from .fakes import JUDGE, Answer, FakeNmp, MemoryContext, completion, job, tool_record

pytestmark = pytest.mark.unit


def settings(**chat: Any) -> EvaluatorSettings:
    defaults: dict[str, Any] = {"concurrency": 4, "backoff_s": 0.0, "attempts": 3}
    return EvaluatorSettings(chat=ChatSettings(**{**defaults, **chat}))


def echo_reference(records: list[dict[str, Any]]) -> Answer:
    """A candidate that answers the reference call for `question i` (its user content)."""
    by_question = {r["request"]["messages"][-1]["content"]: r for r in records}

    def answer(body: dict[str, Any]) -> httpx.Response:
        assert body["tool_choice"] == "required"
        assert body["tools"]
        record = by_question[body["messages"][-1]["content"]]
        message = record["response"]["choices"][0]["message"]
        calls = [
            {
                "type": "function",
                "function": {**c["function"], "arguments": json.dumps(c["function"]["arguments"])},
            }
            for c in message["tool_calls"]
        ]
        return completion({"content": None, "tool_calls": calls})

    return answer


def judge_says(reply: str) -> Answer:
    return lambda _body: completion({"content": reply})


async def evaluate(
    fake: FakeNmp,
    ctx: MemoryContext,
    config: EvaluatorSettings,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Any:
    """The native backend's evaluation; `sleep` replaces the chat client's waits."""
    transport = fake.transport()
    async with NmpClient(fake.settings, transport=transport) as nmp:
        endpoints = ChatEndpoints(config.chat, transport=transport, sleep=sleep or asyncio.sleep)
        try:
            backend = NativeBackend(DatasetFiles(nmp, config.eval_file), endpoints, config)
            return await backend.evaluate(ctx)
        finally:
            await endpoints.aclose()


def other_arguments(body: dict[str, Any]) -> httpx.Response:
    """The right function with an argument the judge has to weigh."""
    name = body["tools"][0]["function"]["name"]
    call = {"function": {"name": name, "arguments": '{"city": "Elsewhere", "days": 0}'}}
    return completion({"content": None, "tool_calls": [call]})


async def test_scores_exclude_failed_requests_and_count_them() -> None:
    records = [tool_record(i) for i in range(10)]
    right = echo_reference(records)

    def candidate(body: dict[str, Any]) -> httpx.Response:
        question = body["messages"][-1]["content"]
        if question in ("question 0", "question 1"):
            return httpx.Response(500, json={"detail": "boom"})  # fails on every attempt
        if question in ("question 2", "question 3"):
            return completion(
                {
                    "content": None,
                    "tool_calls": [{"function": {"name": "other", "arguments": "{}"}}],
                }
            )
        if question == "question 4":
            return completion({"content": "I would rather chat."})  # no call: scored 0
        if question == "question 5":
            return other_arguments(body)
        return right(body)

    fake = FakeNmp(candidate, judge_says("**RATING:** 1"))
    ctx = MemoryContext(job(fake.upload(records)))
    evaluated = await evaluate(fake, ctx, settings())

    scores = {s.name: s for s in evaluated.scores}
    names = scores["function_name_accuracy"]
    assert (names.n, names.failed) == (10, 2)
    assert names.value == pytest.approx(5 / 8)  # over the 8 answered, not the 10
    assert names.ci_low < names.value < names.ci_high
    assert scores["function_name_and_args_accuracy"].value == pytest.approx(4 / 8)
    # Only question 5 needed the judge (same name, other arguments; it says 1); no call, a
    # wrong name or identical calls follow from the rubric's exact rules.
    correctness = scores["tool_calling_correctness"]
    assert (correctness.failed, correctness.value) == (2, pytest.approx(5 / 8))
    assert fake.chat_requests[JUDGE] == 1
    assert fake.chat_requests["meta/llama-3.2-1b-instruct"] == 2 * 3 + 8  # failures retried
    assert evaluated.usage.requests == 8
    assert evaluated.usage.prompt_tokens_per_request == 10
    failed = [r for r in ctx.saved.values() if not r.ok]
    assert sorted(r.index for r in failed) == [0, 1]
    assert all(r.attempts == 3 and "500" in (r.error or "") for r in failed)
    assert ctx.saved[5].judge_reply == "**RATING:** 1"
    assert ctx.started_ids == ["eval-unit"]
    assert ctx.progress_reports[-1] == (10, 10)


async def test_judge_rates_every_call_when_exact_cases_are_not_decided() -> None:
    records = [tool_record(i) for i in range(4)]
    fake = FakeNmp(echo_reference(records), judge_says("RATING: 0"))
    config = settings()
    config = config.model_copy(
        update={"judge": config.judge.model_copy(update={"decide_exact_cases": False})}
    )
    evaluated = await evaluate(fake, MemoryContext(job(fake.upload(records))), config)
    correctness = next(s for s in evaluated.scores if s.name == "tool_calling_correctness")
    assert fake.chat_requests[JUDGE] == 4
    assert correctness.value == 0.0  # the judge's word, though the calls are identical


async def test_unparsable_judge_replies_are_failed_scorings() -> None:
    records = [tool_record(i) for i in range(4)]
    replies = iter(["RATING: 1", "I am not sure", "rating=0", "RATING: 7"])
    fake = FakeNmp(other_arguments, lambda _b: completion({"content": next(replies)}))
    evaluated = await evaluate(
        fake, MemoryContext(job(fake.upload(records))), settings(concurrency=1)
    )
    correctness = next(s for s in evaluated.scores if s.name == "tool_calling_correctness")
    assert (correctness.n, correctness.failed, correctness.value) == (4, 2, 0.5)
    names = next(s for s in evaluated.scores if s.name == "function_name_accuracy")
    assert (names.failed, names.value) == (0, 1.0)


async def test_transient_errors_are_retried_and_429s_waited_out_without_using_an_attempt() -> None:
    records = [tool_record(i) for i in range(3)]
    right = echo_reference(records)
    failures = Counter[str]()

    def flaky(body: dict[str, Any]) -> httpx.Response:
        question = body["messages"][-1]["content"]
        failures[question] += 1
        if failures[question] <= 2:
            return httpx.Response(503 if failures[question] == 1 else 429)
        return right(body)

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    fake = FakeNmp(flaky, judge_says("RATING: 1"))
    ctx = MemoryContext(job(fake.upload(records)))
    evaluated = await evaluate(fake, ctx, settings(attempts=2), sleep)
    assert all(s.failed == 0 and s.value == 1.0 for s in evaluated.scores)
    # Two attempts allowed: the 503 used one, the 429 none (it was waited out and counted).
    assert {(r.attempts, r.rate_limited) for r in ctx.saved.values()} == {(2, 1)}
    assert evaluated.usage.rate_limited == 3
    assert len(waits) == 6


async def test_permanent_errors_are_not_retried() -> None:
    records = [tool_record(i) for i in range(4)]
    right = echo_reference(records)

    def candidate(body: dict[str, Any]) -> httpx.Response:
        if body["messages"][-1]["content"] == "question 0":
            return httpx.Response(400, json={"detail": "context too long"})
        return right(body)

    fake = FakeNmp(candidate, judge_says("RATING: 1"))
    ctx = MemoryContext(job(fake.upload(records)))
    await evaluate(fake, ctx, settings())
    assert ctx.saved[0].attempts == 1
    assert fake.chat_requests["meta/llama-3.2-1b-instruct"] == 4


async def test_resumes_from_saved_records() -> None:
    records = [tool_record(i) for i in range(6)]
    saved = [
        RecordResult(
            index=i,
            ok=True,
            latency_ms=1.0,
            scores={
                "function_name_accuracy": 0.0,
                "function_name_and_args_accuracy": 0.0,
                "tool_calling_correctness": 0.0,
            },
        )
        for i in range(3)
    ]
    fake = FakeNmp(echo_reference(records), judge_says("RATING: 1"))
    ctx = MemoryContext(job(fake.upload(records)), saved)
    evaluated = await evaluate(fake, ctx, settings())
    assert fake.chat_requests["meta/llama-3.2-1b-instruct"] == 3  # only the unsaved ones
    names = next(s for s in evaluated.scores if s.name == "function_name_accuracy")
    assert names.value == pytest.approx(0.5)  # three saved zeros, three fresh ones


async def test_too_many_failures_fail_the_evaluation() -> None:
    records = [tool_record(i) for i in range(10)]
    fake = FakeNmp(lambda _b: httpx.Response(502), judge_says("RATING: 1"))
    ctx = MemoryContext(job(fake.upload(records)))
    with pytest.raises(EvaluationFailed) as failure:
        await evaluate(fake, ctx, settings(attempts=1, max_failure_ratio=0.3, concurrency=1))
    assert failure.value.kind is EvalErrorKind.JOB_FAILED
    assert "502" in failure.value.message
    # It stopped once the budget (3 of 10) was exceeded instead of asking all ten.
    assert fake.chat_requests["meta/llama-3.2-1b-instruct"] == 4


async def test_generic_similarity_is_the_judge_rating_over_ten() -> None:
    records = [
        {
            "request": {"messages": [{"role": "user", "content": f"q{i}"}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": f"answer {i}"}}]},
        }
        for i in range(4)
    ]
    contents = {"q0": "answer 0 ", "q1": "", "q2": "something", "q3": "ANSWER 3"}
    replies = {"something": "Score: 4/10", "answer 3": "garbled"}

    def candidate(body: dict[str, Any]) -> httpx.Response:
        assert "tools" not in body
        return completion({"content": contents[body["messages"][-1]["content"]]})

    def judge(body: dict[str, Any]) -> httpx.Response:
        prompt = body["messages"][-1]["content"]
        candidate_answer = prompt.split("CANDIDATE ANSWER:\n")[1].split("\n---")[0]
        return completion({"content": replies[candidate_answer.lower()]})

    fake = FakeNmp(candidate, judge)
    evaluated = await evaluate(
        fake, MemoryContext(job(fake.upload(records), WorkloadType.GENERIC)), settings()
    )
    (similarity,) = evaluated.scores
    assert similarity.name == "similarity"
    # identical (but for spaces) -> 1.0 unasked, empty -> 0.1 unasked, 4 -> 0.4,
    # garbled -> excluded
    assert (similarity.n, similarity.failed) == (4, 1)
    assert similarity.value == pytest.approx((1.0 + 0.1 + 0.4) / 3)
    assert fake.chat_requests[JUDGE] == 2


async def test_each_record_detail_keeps_the_ids_of_the_icl_examples_it_was_shown() -> None:
    records = [tool_record(i) for i in range(4)]
    records[0]["icl_example_ids"] = ["doc-7", "doc-3"]
    records[1]["icl_example_ids"] = []
    records[2]["icl_example_ids"] = ["doc-9"]
    failing = {"question 2"}

    def candidate(body: dict[str, Any]) -> httpx.Response:
        if body["messages"][-1]["content"] in failing:
            return httpx.Response(500, json={"detail": "boom"})
        return echo_reference(records)(body)

    fake = FakeNmp(candidate, judge_says("**RATING:** 1"))
    ctx = MemoryContext(job(fake.upload(records)))
    await evaluate(fake, ctx, settings(attempts=1))

    shown = {index: result.icl_example_ids for index, result in ctx.saved.items()}
    assert shown == {0: ["doc-7", "doc-3"], 1: [], 2: ["doc-9"], 3: None}
    assert not ctx.saved[2].ok  # a failed request keeps them too
    assert ctx.saved[0].model_dump(mode="json")["icl_example_ids"] == ["doc-7", "doc-3"]
