"""429s are waited out: Retry-After honoured (seconds or an HTTP date, capped per wait), the
backoff without it, no attempt used up, every one counted; a request rate limited past the total
bound ends the evaluation with `rate_limited`, never as failed records. An endpoint accepting no
connection (a platform restart) is waited out the same way, up to `chat.unreachable_max_s`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from flywheel_contracts.events import EvalErrorKind
from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_evaluator.backends.native import NativeBackend
from flywheel_evaluator.clients.chat import ChatEndpoint, ChatEndpoints
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.clients.waits import retry_after_seconds
from flywheel_evaluator.config import ChatSettings, EvaluatorSettings
from flywheel_evaluator.errors import EvaluationFailed, RateLimited, Unreachable

from .fakes import BASE_URL, CANDIDATE, JUDGE, FakeNmp, MemoryContext, completion, job, tool_record

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("7", 7.0, id="seconds"),
        pytest.param(" 0 ", 0.0, id="zero"),
        pytest.param("1.5", 1.5, id="fraction"),
        pytest.param(format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0, id="date"),
        pytest.param(format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0, id="past"),
        pytest.param("-3", None, id="negative"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("nan", None, id="not-a-number"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, expected: float | None
) -> None:
    assert retry_after_seconds(header, NOW) == expected


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering the scripted responses in turn, then 200s."""
    queue, seen = list(answers), []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if queue else completion({"content": "ok"})

    return httpx.MockTransport(handle), seen


def limited(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(429, headers=headers, json={"error": "slow down"})


async def ask(transport: httpx.MockTransport, sleeps: Sleeps, **chat: Any) -> Any:
    settings = ChatSettings(**{"attempts": 1, "backoff_s": 0.5, "backoff_max_s": 1.0, **chat})
    endpoint = ChatEndpoint(BASE_URL, settings, transport=transport, sleep=sleeps)
    try:
        return await endpoint.complete(CANDIDATE, [{"role": "user", "content": "hi"}])
    finally:
        await endpoint.aclose()


async def test_retry_after_seconds_are_waited_without_using_an_attempt() -> None:
    transport, seen = scripted(limited("7"), limited("7"))
    sleeps = Sleeps()
    result = await ask(transport, sleeps)  # one attempt allowed: 429s are not attempts
    assert (result.attempts, result.rate_limited) == (1, 2)
    assert sleeps.waits == [7.0, 7.0]
    assert len(seen) == 3


async def test_a_long_retry_after_is_capped_per_wait() -> None:
    transport, _ = scripted(limited("120"))
    sleeps = Sleeps()
    await ask(transport, sleeps, retry_after_max_s=60)
    assert sleeps.waits == [60.0]


async def test_an_http_date_retry_after_is_waited_until() -> None:
    when = datetime.now(UTC) + timedelta(seconds=20)
    transport, _ = scripted(limited(format_datetime(when, usegmt=True)))
    sleeps = Sleeps()
    await ask(transport, sleeps)
    [wait] = sleeps.waits
    assert 17 <= wait <= 20


async def test_without_retry_after_the_backoff_is_used() -> None:
    transport, _ = scripted(limited(), limited(), limited("garbage"))
    sleeps = Sleeps()
    result = await ask(transport, sleeps)
    assert sleeps.waits == [0.5, 1.0, 1.0]  # backoff_s doubled, capped at backoff_max_s
    assert result.rate_limited == 3


async def test_a_request_limited_past_the_bound_gives_up_with_the_count_and_the_wait() -> None:
    transport, seen = scripted(*[limited("30")] * 10)
    sleeps = Sleeps()
    with pytest.raises(RateLimited) as given_up:
        await ask(transport, sleeps, rate_limited_max_s=100)
    assert sleeps.waits == [30.0, 30.0, 30.0]  # a fourth wait would pass 100 s
    assert given_up.value.rate_limited == 4 and len(seen) == 4
    assert "4 answers 429" in str(given_up.value) and "over 90 s" in str(given_up.value)


async def test_a_retry_after_beyond_the_bound_gives_up_at_once() -> None:
    transport, _ = scripted(limited("3600"))
    sleeps = Sleeps()
    with pytest.raises(RateLimited, match="waiting 3600 s more"):
        await ask(transport, sleeps)
    assert sleeps.waits == []


async def evaluate(fake: FakeNmp, ctx: MemoryContext, chat: ChatSettings) -> Any:
    config = EvaluatorSettings(chat=chat)
    transport = fake.transport()
    async with NmpClient(fake.settings, transport=transport) as nmp:
        endpoints = ChatEndpoints(config.chat, transport=transport, sleep=Sleeps())
        try:
            backend = NativeBackend(DatasetFiles(nmp, config.eval_file), endpoints, config)
            return await backend.evaluate(ctx)
        finally:
            await endpoints.aclose()


def right_call(body: dict[str, Any]) -> httpx.Response:
    i = int(body["messages"][-1]["content"].split()[-1])
    call = {"name": "get_weather", "arguments": {"city": f"city-{i}", "days": i % 5}}
    return completion({"content": None, "tool_calls": [{"function": call}]})


async def test_429s_waited_out_are_summed_into_the_usage() -> None:
    answered: set[str] = set()

    def once_limited(body: dict[str, Any]) -> httpx.Response:
        question = body["messages"][-1]["content"]
        if question not in answered:
            answered.add(question)
            return limited("1")
        return right_call(body)

    fake = FakeNmp(once_limited, lambda _b: completion({"content": "RATING: 1"}))
    ctx = MemoryContext(job(fake.upload([tool_record(i) for i in range(5)])))
    evaluated = await evaluate(fake, ctx, ChatSettings(attempts=1))
    assert evaluated.usage.rate_limited == 5
    assert {r.rate_limited for r in ctx.saved.values()} == {1}
    assert all(s.value == 1.0 and s.failed == 0 for s in evaluated.scores)


async def test_a_candidate_rate_limited_past_the_bound_ends_the_evaluation() -> None:
    def always_limited(_body: dict[str, Any]) -> httpx.Response:
        return limited("40")

    fake = FakeNmp(always_limited, lambda _b: completion({"content": "RATING: 1"}))
    ctx = MemoryContext(job(fake.upload([tool_record(i) for i in range(6)])))
    with pytest.raises(EvaluationFailed) as failure:
        await evaluate(fake, ctx, ChatSettings(concurrency=2, rate_limited_max_s=100))
    assert failure.value.kind is EvalErrorKind.RATE_LIMITED
    assert f"the candidate {CANDIDATE}" in failure.value.message
    assert "3 answers 429" in failure.value.message
    assert not [r for r in ctx.saved.values() if not r.ok], "no record recorded as failed"


async def test_a_judge_rate_limited_past_the_bound_ends_the_evaluation() -> None:
    def other_arguments(_body: dict[str, Any]) -> httpx.Response:
        call = {"name": "get_weather", "arguments": {"city": "Elsewhere"}}
        return completion({"content": None, "tool_calls": [{"function": call}]})

    fake = FakeNmp(other_arguments, lambda _b: limited("3600"))
    ctx = MemoryContext(job(fake.upload([tool_record(i) for i in range(2)])))
    with pytest.raises(EvaluationFailed) as failure:
        await evaluate(fake, ctx, ChatSettings(concurrency=1))
    assert failure.value.kind is EvalErrorKind.RATE_LIMITED
    assert f"the judge {JUDGE}" in failure.value.message


def refusing(times: int) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport whose first `times` connections are refused, then answering 200s."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= times:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return completion({"content": "ok"})

    return httpx.MockTransport(handle), seen


async def test_refused_connections_are_waited_out_without_using_an_attempt() -> None:
    transport, seen = refusing(4)
    sleeps = Sleeps()
    result = await ask(transport, sleeps)  # one attempt allowed: a refusal is not one
    assert result.attempts == 1
    assert sleeps.waits == [0.5, 1.0, 1.0, 1.0]
    assert len(seen) == 5


async def test_an_endpoint_refusing_past_the_bound_gives_up() -> None:
    transport, seen = refusing(1000)
    sleeps = Sleeps()
    with pytest.raises(Unreachable) as given_up:
        await ask(transport, sleeps, unreachable_max_s=10)
    assert sum(sleeps.waits) <= 10 and len(seen) == len(sleeps.waits) + 1
    assert "refused connections" in str(given_up.value)
    assert "chat.unreachable_max_s" in str(given_up.value)


async def test_a_candidate_down_past_the_bound_ends_the_evaluation_not_its_records() -> None:
    def down(_body: dict[str, Any]) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    fake = FakeNmp(down, lambda _b: completion({"content": "RATING: 1"}))
    ctx = MemoryContext(job(fake.upload([tool_record(i) for i in range(4)])))
    with pytest.raises(EvaluationFailed) as failure:
        await evaluate(fake, ctx, ChatSettings(concurrency=2, unreachable_max_s=30))
    assert failure.value.kind is EvalErrorKind.JOB_FAILED
    assert f"the candidate {CANDIDATE} is unreachable" in failure.value.message
    assert not [r for r in ctx.saved.values() if not r.ok], "no record recorded as failed"
