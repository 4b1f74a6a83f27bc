"""Connections of a chat endpoint: small pools, each request on the least busy one."""

from __future__ import annotations

from contextlib import ExitStack

import httpx
import pytest

from flywheel_evaluator.clients.pools import CONNECTIONS_PER_POOL, Pools

pytestmark = pytest.mark.unit


def pools(max_connections: int, transport: httpx.AsyncBaseTransport | None = None) -> Pools:
    return Pools(
        "http://candidate.test/v1",
        max_connections=max_connections,
        timeout=httpx.Timeout(5.0),
        transport=transport,
    )


async def test_requests_go_to_the_least_busy_pool() -> None:
    endpoint = pools(4 * CONNECTIONS_PER_POOL)
    with ExitStack() as held:
        first = [held.enter_context(endpoint.client()) for _ in range(4)]
        assert len({id(c) for c in first}) == 4, "every pool takes one before any takes two"
        second = [held.enter_context(endpoint.client()) for _ in range(4)]
        assert {id(c) for c in second} == {id(c) for c in first}
    with endpoint.client() as again:
        assert id(again) in {id(c) for c in first}
    await endpoint.aclose()


async def test_a_small_endpoint_has_one_pool() -> None:
    endpoint = pools(CONNECTIONS_PER_POOL)
    with endpoint.client() as one, endpoint.client() as two:
        assert one is two
    await endpoint.aclose()
