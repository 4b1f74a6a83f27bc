"""The embeddings endpoint of semantic ICL: the NIM proxy by default, or a remote one with an API
key (FLYWHEEL_DATASETS_BUILD__EMBEDDING_API_KEY) sent as `Authorization: Bearer` to it only;
settings, errors and logs never show the key."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_contracts.runtime.testing import captured_logs
from flywheel_datasets.clients.embeddings import EmbeddingsEndpoint
from flywheel_datasets.clients.nmp import NmpEmbeddings
from flywheel_datasets.config import DatasetsSettings
from flywheel_datasets.errors import EmbeddingUnavailable

pytestmark = pytest.mark.unit

MODEL = "nvidia/llama-3.2-nv-embedqa-1b-v2"
REMOTE = "https://embed.test/v1"


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def keyed(key: str, monkeypatch: pytest.MonkeyPatch) -> DatasetsSettings:
    monkeypatch.setenv("FLYWHEEL_DATASETS_BUILD__EMBEDDING_API_KEY", key)
    monkeypatch.setenv("FLYWHEEL_DATASETS_BUILD__EMBEDDING_BASE_URL", REMOTE)
    monkeypatch.setenv("FLYWHEEL_DATASETS_NMP__RETRY_BACKOFF_S", "0")
    return DatasetsSettings()


class Server:
    """Answers embeddings (one vector per input) and anything else with 200; remembers each
    request's URL and Authorization header. `key` set: embeddings want it (401 otherwise)."""

    def __init__(self, key: str | None = None) -> None:
        self.key = key
        self.seen: list[tuple[str, str | None]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization")
        self.seen.append((str(request.url), auth))
        if not request.url.path.endswith("/embeddings"):
            return httpx.Response(200, json={"object": "list", "data": []})
        if self.key is not None and auth != f"Bearer {self.key}":
            return httpx.Response(401, json={"error": {"message": "Incorrect API key provided."}})
        texts = json.loads(request.content)["input"]
        data = [{"index": i, "embedding": [float(i), 1.0]} for i in range(len(texts))]
        return httpx.Response(200, json={"object": "list", "data": data})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


async def test_the_key_goes_to_the_embeddings_endpoint_only(
    key: str, keyed: DatasetsSettings
) -> None:
    server = Server(key)
    endpoint = EmbeddingsEndpoint.from_settings(keyed, transport=server.transport())
    nmp = NmpClient(keyed.nmp, transport=server.transport())
    try:
        vectors = await NmpEmbeddings(endpoint, MODEL, batch_size=2).embed(["a", "b", "c"])
        await nmp.nim.list_models()  # the NIM proxy and every other NMP host: no key
        await nmp.entity_store.create_namespace()
    finally:
        await endpoint.aclose()
        await nmp.aclose()
    assert vectors == [[0.0, 1.0], [1.0, 1.0], [0.0, 1.0]]
    with_key = [url for url, auth in server.seen if auth is not None]
    assert with_key == [f"{REMOTE}/embeddings"] * 2
    assert all(auth == f"Bearer {key}" for url, auth in server.seen if url.startswith(REMOTE))
    assert len(server.seen) == 4


async def test_a_key_from_a_mounted_file_and_extra_headers_reach_the_endpoint(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "embedding-key"
    secret_file.write_text(f"{key}\n")
    monkeypatch.setenv("FLYWHEEL_DATASETS_BUILD__EMBEDDING_API_KEY_FILE", str(secret_file))
    monkeypatch.setenv("FLYWHEEL_DATASETS_BUILD__EMBEDDING_BASE_URL", REMOTE)
    monkeypatch.setenv("FLYWHEEL_DATASETS_BUILD__EMBEDDING_HEADERS", '{"X-Title": "flywheel"}')
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return Server(key).handle(request)

    settings = DatasetsSettings()
    endpoint = EmbeddingsEndpoint.from_settings(settings, transport=httpx.MockTransport(handle))
    try:
        assert len(await endpoint.embeddings(["x"], model=MODEL)) == 1
    finally:
        await endpoint.aclose()
    [request] = seen
    assert request.headers["authorization"] == f"Bearer {key}"
    assert request.headers["x-title"] == "flywheel"
    assert key not in repr(settings)


async def test_by_default_the_nim_proxy_embeds_without_a_key() -> None:
    server = Server()
    settings = DatasetsSettings()
    assert settings.embedding_base_url == f"{settings.nmp.nim_base_url}/v1"
    endpoint = EmbeddingsEndpoint.from_settings(settings, transport=server.transport())
    try:
        assert len(await endpoint.embeddings(["x"], model=MODEL)) == 1
    finally:
        await endpoint.aclose()
    assert server.seen == [(f"{settings.nmp.nim_base_url}/v1/embeddings", None)]


def test_a_base_url_without_a_path_gets_v1() -> None:
    settings = DatasetsSettings.model_validate(
        {"build": {"embedding_base_url": "https://embed.test"}}
    )
    endpoint = EmbeddingsEndpoint.from_settings(settings)
    assert str(endpoint._client.base_url) == "https://embed.test/v1/"


def test_settings_never_show_the_key(key: str, keyed: DatasetsSettings, tmp_path: Path) -> None:
    assert keyed.build.embedding_api_key is not None
    assert keyed.build.embedding_api_key.get_secret_value() == key
    for text in (
        repr(keyed),
        str(keyed),
        repr(keyed.build),
        keyed.model_dump_json(),
        json.dumps(keyed.model_dump(mode="json")),
    ):
        assert key not in text
    with pytest.raises(FileNotFoundError):
        EmbeddingsEndpoint(REMOTE, keyed.nmp, ca_bundle=tmp_path / "missing.pem")


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the service's logging (JSON lines, as configured in production) writes."""
    with captured_logs() as output:
        yield output


async def test_a_refused_key_is_an_embedding_failure_that_shows_no_key(
    key: str, keyed: DatasetsSettings, log_output: io.StringIO
) -> None:
    server = Server("another-key")
    endpoint = EmbeddingsEndpoint.from_settings(keyed, transport=server.transport())
    try:
        with pytest.raises(EmbeddingUnavailable, match="401") as failed:
            await NmpEmbeddings(endpoint, MODEL, batch_size=8).embed(["a"])
    finally:
        await endpoint.aclose()
    assert server.seen == [(f"{REMOTE}/embeddings", f"Bearer {key}")]  # 401: not retried
    log = structlog.get_logger("test")
    log.info("settings", settings=keyed, build=keyed.build)
    log.warning("dataset.failed", error=str(failed.value))
    out = log_output.getvalue()
    assert "dataset.failed" in out
    assert "SecretStr('**********')" in out
    assert key not in out
    assert key not in str(failed.value)
