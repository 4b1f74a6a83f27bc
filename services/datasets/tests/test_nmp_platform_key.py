"""The NMP platform key (FLYWHEEL_DATASETS_NMP__API_KEY) and CA bundle on the embeddings client:
used on the NIM proxy (the default endpoint) unless the embeddings settings name their own,
never sent to a remote endpoint or the Data Store."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from flywheel_contracts.runtime.nmp import NmpClient, NmpSettings
from flywheel_datasets.clients.embeddings import EmbeddingsEndpoint
from flywheel_datasets.config import BuildSettings, DatasetsSettings

pytestmark = pytest.mark.unit

MODEL = "nvidia/llama-3.2-nv-embedqa-1b-v2"
NMP_CA = Path("/etc/nmp/ca.pem")


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(24)


def _settings(key: str, **build: Any) -> DatasetsSettings:
    return DatasetsSettings(
        nmp=NmpSettings(api_key=SecretStr(key), ca_bundle=NMP_CA, retry_backoff_s=0),
        build=BuildSettings.model_validate(build),
    )


class _Spy(EmbeddingsEndpoint):
    """Keeps what `from_settings` hands the endpoint instead of building a client."""

    given: dict[str, Any]

    def __init__(self, base_url: str, nmp: NmpSettings, **kwargs: Any) -> None:
        type(self).given = {"base_url": base_url, **kwargs}


def test_the_nim_proxy_gets_the_platform_key_and_ca(key: str) -> None:
    _Spy.from_settings(_settings(key))
    assert _Spy.given["base_url"] == "http://nim.test/v1"
    assert _Spy.given["api_key"] == SecretStr(key)
    assert _Spy.given["ca_bundle"] == NMP_CA


def test_a_key_and_ca_of_the_embeddings_own_win(key: str) -> None:
    _Spy.from_settings(
        _settings(key, embedding_api_key="embed-key", embedding_ca_bundle="/embed-ca.pem")
    )
    assert _Spy.given["api_key"] == SecretStr("embed-key")
    assert _Spy.given["ca_bundle"] == Path("/embed-ca.pem")


def test_a_remote_endpoint_never_gets_the_platform_key_or_ca(key: str) -> None:
    _Spy.from_settings(_settings(key, embedding_base_url="https://embed.test/v1"))
    assert _Spy.given["api_key"] is None
    assert _Spy.given["ca_bundle"] is None


async def test_embeddings_on_the_nim_proxy_carry_the_key_and_the_data_store_does_not(
    key: str,
) -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/embeddings"):
            texts = json.loads(request.content)["input"]
            data = [{"index": i, "embedding": [1.0, 0.0]} for i in range(len(texts))]
            return httpx.Response(200, json={"object": "list", "data": data})
        return httpx.Response(201, json={})

    transport = httpx.MockTransport(handle)
    settings = DatasetsSettings(nmp=NmpSettings(api_key=SecretStr(key), retry_backoff_s=0))
    endpoint = EmbeddingsEndpoint.from_settings(settings, transport=transport)
    try:
        assert await endpoint.embeddings(["a"], model=MODEL) == [[1.0, 0.0]]
    finally:
        await endpoint.aclose()
    async with NmpClient(settings.nmp, transport=transport) as nmp:
        await nmp.data_store.create_namespace()
    by_host = {r.url.host: r.headers.get("authorization") for r in seen}
    assert by_host == {"nim.test": f"Bearer {key}", "data-store.test": None}
