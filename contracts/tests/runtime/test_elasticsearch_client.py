"""A real elasticsearch-py 7.17 `AsyncElasticsearch`, built from `client_kwargs()`, against a
recording server on 127.0.0.1: the Authorization it sends in each mode, and TLS trust through
the CA bundle (refused without it)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from contracts.tests.recording_server import (
    Certificates,
    make_certificates,
    recording_server,
)
from flywheel_contracts.runtime import ElasticsearchConnection

elasticsearch = pytest.importorskip("elasticsearch")

# Starts servers of its own (no stack needed).
pytestmark = pytest.mark.integration

KEY = "c2VjcmV0LWlkOnNlY3JldC1hcGkta2V5"
PASSWORD = "pa55:w0rd-secret"


async def _info(connection: ElasticsearchConnection) -> dict[str, Any]:
    # max_retries=0 as the services build it: a refused connection fails at once.
    client = elasticsearch.AsyncElasticsearch(**connection.client_kwargs(), max_retries=0)
    try:
        info: dict[str, Any] = await client.info()
        return info
    finally:
        await client.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"api_key": KEY}, f"ApiKey {KEY}"),
        ({"api_key": "my-id:my-key"}, "ApiKey " + base64.b64encode(b"my-id:my-key").decode()),
        ({"username": "flywheel", "password": PASSWORD}, _basic("flywheel", PASSWORD)),
        ({}, None),
    ],
)
async def test_the_client_sends_the_configured_authorization(
    values: dict[str, Any], expected: str | None
) -> None:
    with recording_server() as server:
        connection = ElasticsearchConnection.model_validate({"url": server.url, **values})
        info = await _info(connection)
    assert info["tagline"] == "You Know, for Search"
    assert server.authorizations()
    assert set(server.authorizations()) == {expected}


async def test_a_password_from_a_file_is_sent(tmp_path: Path) -> None:
    (tmp_path / "password").write_text(f"{PASSWORD}\n")
    with recording_server() as server:
        await _info(
            ElasticsearchConnection(
                url=SecretStr(server.url),
                username="flywheel",
                password_file=tmp_path / "password",
            )
        )
    assert set(server.authorizations()) == {_basic("flywheel", PASSWORD)}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


async def test_tls_trusted_through_the_ca_bundle(certificates: Certificates) -> None:
    with recording_server(certificates) as server:
        assert server.url.startswith("https://")
        connection = ElasticsearchConnection(
            url=SecretStr(server.url), api_key=SecretStr(KEY), ca_bundle=certificates.ca
        )
        await _info(connection)
    assert set(server.authorizations()) == {f"ApiKey {KEY}"}


async def test_tls_refused_without_the_ca_bundle(certificates: Certificates) -> None:
    with recording_server(certificates) as server:
        connection = ElasticsearchConnection(url=SecretStr(server.url), api_key=SecretStr(KEY))
        with pytest.raises(elasticsearch.ConnectionError) as refused:
            await _info(connection)
    assert "certificate" in str(refused.value).lower()
    assert KEY not in str(refused.value)
    # The key never went out: the handshake failed first.
    assert server.requests == []


async def test_tls_unverified_when_told(certificates: Certificates) -> None:
    with recording_server(certificates) as server:
        await _info(ElasticsearchConnection(url=SecretStr(server.url), verify_certs=False))
    assert server.requests
