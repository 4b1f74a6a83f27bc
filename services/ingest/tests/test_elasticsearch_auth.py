"""Ingest's Elasticsearch connection: the kit's API key / basic auth / CA settings under
FLYWHEEL_INGEST_ELASTICSEARCH__*, used by the store's client (readiness check included)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.tests.recording_server import recording_server
from flywheel_ingest.config import IngestSettings
from flywheel_ingest.indexer import ElasticsearchStore

KEY = "aW5nZXN0LWlkOmluZ2VzdC1zZWNyZXQ="
PASSWORD = "ingest-pa55word"
PREFIX = "FLYWHEEL_INGEST_ELASTICSEARCH__"


@pytest.mark.unit
def test_the_settings_read_their_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "password").write_text(PASSWORD)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv(f"{PREFIX}URL", "https://es.internal:9200")
    monkeypatch.setenv(f"{PREFIX}USERNAME", "ingest")
    monkeypatch.setenv(f"{PREFIX}PASSWORD_FILE", str(tmp_path / "password"))
    monkeypatch.setenv(f"{PREFIX}CA_BUNDLE", str(ca))
    monkeypatch.setenv(f"{PREFIX}INDEX", "logs")
    settings = IngestSettings().elasticsearch
    assert settings.index == "logs"
    kwargs = settings.client_kwargs()
    assert kwargs["http_auth"] == ("ingest", PASSWORD)
    assert kwargs["ca_certs"] == str(ca)
    assert PASSWORD not in repr(IngestSettings())


@pytest.mark.unit
def test_a_refused_start_does_not_print_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}API_KEY", KEY)
    monkeypatch.setenv(f"{PREFIX}USERNAME", "ingest")
    monkeypatch.setenv(f"{PREFIX}PASSWORD", PASSWORD)
    with pytest.raises(ValidationError, match="not both") as refused:
        IngestSettings()
    assert KEY not in str(refused.value) and PASSWORD not in str(refused.value)


@pytest.mark.integration
async def test_the_store_and_its_readiness_check_send_the_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with recording_server() as server:
        monkeypatch.setenv(f"{PREFIX}URL", server.url)
        monkeypatch.setenv(f"{PREFIX}API_KEY", KEY)
        store = ElasticsearchStore(IngestSettings().elasticsearch)
        try:
            await store.ping()
        finally:
            await store.close()
    assert server.authorizations() and set(server.authorizations()) == {f"ApiKey {KEY}"}


@pytest.mark.integration
async def test_the_store_sends_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    with recording_server() as server:
        monkeypatch.setenv(f"{PREFIX}URL", server.url)
        monkeypatch.setenv(f"{PREFIX}USERNAME", "ingest")
        monkeypatch.setenv(f"{PREFIX}PASSWORD", PASSWORD)
        store = ElasticsearchStore(IngestSettings().elasticsearch)
        try:
            await store.ping()
        finally:
            await store.close()
    basic = "Basic " + base64.b64encode(f"ingest:{PASSWORD}".encode()).decode()
    assert set(server.authorizations()) == {basic}
