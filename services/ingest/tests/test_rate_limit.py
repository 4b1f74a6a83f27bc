"""Per-token rate limits: a token bucket per token, 429 with `Retry-After` when empty; and an
address sending wrong tokens is slowed down the same way. On a clock the test drives."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from flywheel_contracts.runtime.testing import ManualMonotonic
from flywheel_ingest.auth import TokenBuckets
from flywheel_ingest.config import RateLimitSettings, ScopedToken
from flywheel_ingest.endpoints import bulk
from flywheel_ingest.handlers import intake_router
from flywheel_ingest.testing import FakeRawTopic, intake_client

pytestmark = pytest.mark.unit


LIMIT = RateLimitSettings(requests_per_s=2, burst=3)
TOKENS = {
    "acme": ScopedToken(token=SecretStr("acme-s3cret"), clients=frozenset({"acme"})),
    "globex": ScopedToken(token=SecretStr("globex-s3cret"), clients=frozenset({"globex"})),
}


def test_without_a_rate_every_request_passes() -> None:
    buckets = TokenBuckets(None, 1, ManualMonotonic())
    assert all(buckets.take("acme") is None for _ in range(10_000))


def test_a_burst_passes_then_the_next_request_waits_for_one_refill() -> None:
    clock = ManualMonotonic()
    buckets = TokenBuckets(LIMIT.requests_per_s, LIMIT.burst, clock)
    assert [buckets.take("acme") for _ in range(3)] == [None, None, None]
    assert buckets.take("acme") == pytest.approx(0.5)  # one request per 1/2 s


def test_the_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = ManualMonotonic()
    buckets = TokenBuckets(LIMIT.requests_per_s, LIMIT.burst, clock)
    for _ in range(3):
        buckets.take("acme")
    clock.advance(0.5)
    assert buckets.take("acme") is None
    assert buckets.take("acme") is not None
    clock.advance(3600)  # idle for an hour: a burst again, not 7200 requests
    assert [buckets.take("acme") for _ in range(4)][-1] is not None


def test_refused_requests_do_not_use_up_the_bucket() -> None:
    clock = ManualMonotonic()
    buckets = TokenBuckets(LIMIT.requests_per_s, LIMIT.burst, clock)
    for _ in range(3):
        buckets.take("acme")
    for _ in range(100):
        buckets.take("acme")  # a client hammering while refused
    clock.advance(0.5)
    assert buckets.take("acme") is None


def test_each_token_has_a_bucket_of_its_own() -> None:
    buckets = TokenBuckets(LIMIT.requests_per_s, LIMIT.burst, ManualMonotonic())
    for _ in range(3):
        buckets.take("acme")
    assert buckets.take("acme") is not None
    assert buckets.take("globex") is None
    assert buckets.take(None) is None  # the global token's


async def test_an_exhausted_token_is_answered_429_with_retry_after_others_pass() -> None:
    clock, topic = ManualMonotonic(), FakeRawTopic()
    rate = {"requests_per_s": 0.1, "burst": 1}  # one request per 10 s
    async with intake_client(
        intake_router, topic, clock=clock, tokens=TOKENS, rate_limit=rate
    ) as http:
        acme = {"authorization": "Bearer acme-s3cret"}
        first = await http.post("/v1/logs", content=b"{}", headers=acme)
        second = await http.post("/v1/logs", content=b"{}", headers=acme)
        other = await http.post(
            "/v1/logs", content=b"{}", headers={"authorization": "Bearer globex-s3cret"}
        )
        clock.advance(10)
        later = await http.post("/v1/logs", content=b"{}", headers=acme)
    assert (first.status_code, second.status_code, other.status_code) == (202, 429, 202)
    assert second.headers["retry-after"] == "10"
    assert later.status_code == 202
    assert len(topic.sent) == 3


async def test_wrong_tokens_are_refused_401_without_using_a_bucket() -> None:
    clock, topic = ManualMonotonic(), FakeRawTopic()
    rate = {"requests_per_s": 0.1, "burst": 1}
    async with intake_client(
        intake_router, topic, clock=clock, tokens=TOKENS, rate_limit=rate
    ) as http:
        wrong = [
            await http.post("/v1/logs", content=b"{}", headers={"authorization": "Bearer x"})
            for _ in range(3)
        ]
        right = await http.post(
            "/v1/logs", content=b"{}", headers={"authorization": "Bearer acme-s3cret"}
        )
    assert [answer.status_code for answer in wrong] == [401, 401, 401]
    assert right.status_code == 202


async def test_elasticsearch_clients_get_its_own_429_to_back_off_on() -> None:
    clock, topic = ManualMonotonic(), FakeRawTopic()
    async with intake_client(
        bulk.router,
        topic,
        clock=clock,
        max_body_bytes=65536,
        max_line_bytes=16384,
        rate_limit={"requests_per_s": 1, "burst": 1},
    ) as http:
        await http.get("/")
        response = await http.get("/")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-elastic-product"] == "Elasticsearch"
    assert response.json()["error"]["type"] == "es_rejected_execution_exception"


async def test_an_address_guessing_tokens_is_answered_429_unchecked_until_it_slows_down() -> None:
    clock, topic = ManualMonotonic(), FakeRawTopic()
    limits = {"failed_auth_per_s": 0.5, "failed_auth_burst": 3}
    async with intake_client(
        intake_router, topic, clock=clock, tokens=TOKENS, rate_limit=limits
    ) as http:

        async def post(token: str) -> tuple[int, str | None]:
            answer = await http.post(
                "/v1/logs", content=b"{}", headers={"authorization": f"Bearer {token}"}
            )
            return answer.status_code, answer.headers.get("retry-after")

        guesses = [await post(f"guess-{n}") for n in range(5)]
        # Throttled, even the right token is not looked at: a guess cannot be confirmed.
        right_while_throttled = await post("acme-s3cret")
        clock.advance(2)  # one failure's worth refilled
        right_later = await post("acme-s3cret")
    assert guesses == [(401, None)] * 3 + [(429, "2")] * 2
    assert right_while_throttled == (429, "2")
    assert right_later == (202, None)
    assert len(topic.sent) == 1


def test_idle_addresses_are_forgotten_once_there_are_many() -> None:
    clock = ManualMonotonic()
    buckets = TokenBuckets(1.0, 2, clock)
    buckets.take("busy")
    buckets.take("busy")
    for n in range(TokenBuckets.MAX_KEYS):
        buckets.take(f"10.0.{n // 256}.{n % 256}")
    clock.advance(5)  # every bucket but the one taken last is full again
    buckets.take("newcomer")
    assert buckets.wait("busy") is None
    assert len(buckets) < 10
