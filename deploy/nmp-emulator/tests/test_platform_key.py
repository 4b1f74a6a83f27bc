"""NMP_EMULATOR_API_KEY: the platform routes and the NIM proxy want the key; probes, the admin
API and the Data Store stay open; hosted models keep their own key when one is set."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import SecretStr

from flywheel_nmp_emulator.api import (
    admin,
    customizer,
    datastore,
    deployments,
    entity_store,
    evaluator,
    health,
    nim,
)
from flywheel_nmp_emulator.api.auth import OPEN_PREFIXES
from flywheel_nmp_emulator.config import Settings
from flywheel_nmp_emulator.testing import deployment_body, in_process, poll

pytestmark = pytest.mark.unit

PLATFORM_KEY = secrets.token_urlsafe(24)
HOSTED_KEY = secrets.token_urlsafe(24)
MODEL = "meta/llama-3.2-1b-instruct"
JUDGE = "meta/llama-3.3-70b-instruct"
EMBEDDER = "nvidia/llama-3.2-nv-embedqa-1b-v2"
CHAT = {"messages": [{"role": "user", "content": "Where is order ORD-123456?"}]}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def keyed() -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(Settings(gpus=4, api_key=SecretStr(PLATFORM_KEY))) as client:
        yield client


@pytest.fixture
async def both_keys() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        gpus=4, api_key=SecretStr(PLATFORM_KEY), hosted_api_key=SecretStr(HOSTED_KEY)
    )
    async with in_process(settings) as client:
        yield client


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.request.url, response.text)
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    # Shaped like the emulator's other errors: `detail` (platform) and `error` (NIM, OpenAI).
    assert body["detail"] == body["error"]["message"]
    assert body["error"]["code"] == "invalid_api_key"
    assert PLATFORM_KEY not in response.text and HOSTED_KEY not in response.text


# One call per NMP area: Entity Store, Customizer, Evaluator, Deployment Management, NIM proxy.
SAMPLE_CALLS: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", "/v1/namespaces", None),
    ("POST", "/v1/namespaces", {"id": "keyed-ns"}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/datasets", None),
    ("GET", "/v1/customization/jobs", None),
    ("GET", "/v1/customization/configs", None),
    ("GET", "/v1/evaluation/jobs", None),
    ("GET", "/v1/deployment/model-deployments", None),
    ("POST", "/v1/chat/completions", {"model": JUDGE, **CHAT}),
    ("POST", "/v1/embeddings", {"model": EMBEDDER, "input": ["x"]}),
]


@pytest.mark.parametrize(("method", "path", "body"), SAMPLE_CALLS)
async def test_platform_and_nim_routes_want_the_key(
    keyed: httpx.AsyncClient, method: str, path: str, body: dict[str, object] | None
) -> None:
    _assert_refused(await keyed.request(method, path, json=body))
    _assert_refused(await keyed.request(method, path, json=body, headers=_bearer("not-the-key")))
    # The key without the scheme is not a bearer token.
    _assert_refused(
        await keyed.request(method, path, json=body, headers={"Authorization": PLATFORM_KEY})
    )
    allowed = await keyed.request(method, path, json=body, headers=_bearer(PLATFORM_KEY))
    assert allowed.status_code < 300, allowed.text


async def test_every_guarded_route_refuses_a_request_without_the_key(
    keyed: httpx.AsyncClient,
) -> None:
    """Whatever routes the emulator grows, only the open prefixes answer without the key."""
    routers = (admin, customizer, datastore, deployments, entity_store, evaluator, health, nim)
    guarded = [
        (sorted(route.methods or {"GET"})[0], re.sub(r"\{[^}]+\}", "x", route.path))
        for module in routers
        for route in module.router.routes
        if isinstance(route, APIRoute) and not route.path.startswith(OPEN_PREFIXES)
    ]
    assert len(guarded) > 30
    for method, path in guarded:
        _assert_refused(await keyed.request(method, path))
    # An unknown path too: nothing about the routes shows without the key.
    _assert_refused(await keyed.get("/v1/no-such-route"))


async def test_probes_admin_and_data_store_stay_open(keyed: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/health/ready", "/emulator/state"):
        response = await keyed.get(path)
        assert response.status_code == 200, (path, response.text)
    # The Data Store keeps its own rule (the HF token's; none in the emulator).
    created = await keyed.post("/v1/datastore/namespaces", data={"namespace": "open-ns"})
    assert created.status_code in {201, 409}, created.text
    missing = await keyed.get("/v1/hf/api/datasets/open-ns/nothing")
    assert missing.status_code == 404, missing.text


async def test_deployed_models_want_the_key_and_serve_with_it(keyed: httpx.AsyncClient) -> None:
    keyed.headers.update(_bearer(PLATFORM_KEY))
    await keyed.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
    await poll(
        keyed,
        f"/v1/deployment/model-deployments/dfwbp/{MODEL.replace('/', '-')}",
        lambda b: b["status_details"]["status"] == "ready",
    )
    body = {"model": MODEL, **CHAT}
    assert (await keyed.post("/v1/chat/completions", json=body)).status_code == 200
    del keyed.headers["Authorization"]
    _assert_refused(await keyed.post("/v1/chat/completions", json=body))


async def test_with_both_keys_hosted_models_want_theirs_and_the_rest_the_platform_key(
    both_keys: httpx.AsyncClient,
) -> None:
    judge = {"model": JUDGE, **CHAT}
    embed = {"model": EMBEDDER, "input": ["x"]}
    for path, body in (("/v1/chat/completions", judge), ("/v1/embeddings", embed)):
        _assert_refused(await both_keys.post(path, json=body, headers=_bearer(PLATFORM_KEY)))
        allowed = await both_keys.post(path, json=body, headers=_bearer(HOSTED_KEY))
        assert allowed.status_code == 200, allowed.text
    # A model that is not hosted (here: not deployed, so 404 once let in) wants the platform key.
    other = {"model": MODEL, **CHAT}
    _assert_refused(
        await both_keys.post("/v1/chat/completions", json=other, headers=_bearer(HOSTED_KEY))
    )
    let_in = await both_keys.post("/v1/chat/completions", json=other, headers=_bearer(PLATFORM_KEY))
    assert let_in.status_code == 404, let_in.text
    _assert_refused(await both_keys.get("/v1/models", headers=_bearer(HOSTED_KEY)))


async def test_without_a_key_nothing_is_asked(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/namespaces")).status_code == 200
    assert (await client.get("/v1/customization/jobs")).status_code == 200


async def test_the_key_is_never_logged(
    keyed: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await keyed.get("/v1/namespaces", headers=_bearer("wrong-" + PLATFORM_KEY))
    await keyed.get("/v1/namespaces", headers=_bearer(PLATFORM_KEY))
    assert PLATFORM_KEY not in caplog.text
