"""Failure injection: per-endpoint error rates and timeouts, deterministic for a seed, changeable
at runtime through the admin API."""

from __future__ import annotations

import time

import httpx
import pytest

from flywheel_nmp_emulator.config import EndpointFault, Faults
from flywheel_nmp_emulator.faults import FaultInjector

pytestmark = pytest.mark.unit


def _pattern(seed: int, n: int = 200) -> list[bool]:
    injector = FaultInjector(
        Faults(seed=seed, endpoints={"/v1/chat": EndpointFault(error_rate=0.3)})
    )
    return [injector.decide("POST", "/v1/chat/completions") is not None for _ in range(n)]


def test_error_pattern_is_deterministic_for_a_seed() -> None:
    first = _pattern(seed=7)
    assert first == _pattern(seed=7)
    assert first != _pattern(seed=8)
    assert 0.2 < sum(first) / len(first) < 0.4


def test_longest_prefix_and_methods_select_the_rule() -> None:
    injector = FaultInjector(
        Faults(
            endpoints={
                "/v1": EndpointFault(error_rate=1.0, error_status=503),
                "/v1/models": EndpointFault(error_rate=0.0),
                "/v1/datasets": EndpointFault(error_rate=1.0, methods=["POST"]),
            }
        )
    )
    verdict = injector.decide("GET", "/v1/evaluation/jobs/x")
    assert verdict is not None and verdict[1].error_status == 503
    assert injector.decide("GET", "/v1/models") is None
    assert injector.decide("POST", "/v1/datasets") is not None
    # GET /v1/datasets is not covered by the POST-only rule, so the /v1 rule applies.
    assert injector.decide("GET", "/v1/datasets/a/b") is not None
    assert injector.decide("GET", "/health/live") is None


async def test_runtime_faults_fail_requests_and_admin_stays_reachable(
    client: httpx.AsyncClient,
) -> None:
    faults = {"seed": 1, "endpoints": {"/v1/namespaces": {"error_rate": 1.0, "error_status": 503}}}
    assert (await client.put("/emulator/faults", json=faults)).status_code == 200
    failed = await client.post("/v1/namespaces", json={"id": "x"})
    assert failed.status_code == 503 and failed.json()["detail"] == "injected error"
    assert (await client.get("/emulator/faults")).json()["endpoints"]["/v1/namespaces"][
        "error_rate"
    ] == 1.0
    assert (await client.put("/emulator/faults", json={})).status_code == 200
    assert (await client.post("/v1/namespaces", json={"id": "x"})).status_code == 201


async def test_timeout_holds_the_answer_then_gives_504(client: httpx.AsyncClient) -> None:
    # (The ASGI transport has no client timeout; test_process.py sees a real one expire.)
    rule = {"timeout_rate": 1.0, "timeout_seconds": 0.3}
    await client.put("/emulator/faults", json={"endpoints": {"/v1/models": rule}})
    started = time.monotonic()
    slow = await client.get("/v1/models")
    assert time.monotonic() - started >= 0.3
    assert slow.status_code == 504
