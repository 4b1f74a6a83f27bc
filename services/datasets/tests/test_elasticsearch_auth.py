"""The datasets service's Elasticsearch connection: the kit's API key / basic auth / CA settings
under FLYWHEEL_DATASETS_ELASTICSEARCH__*, used by the records' client (readiness included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.tests.recording_server import recording_server
from flywheel_datasets.clients.elasticsearch import ElasticsearchRecords
from flywheel_datasets.config import DatasetsSettings

KEY = "ZGF0YXNldHMtaWQ6ZGF0YXNldHMtc2VjcmV0"
PREFIX = "FLYWHEEL_DATASETS_ELASTICSEARCH__"


@pytest.mark.unit
def test_the_settings_read_their_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text(f"{KEY}\n")
    monkeypatch.setenv(f"{PREFIX}URL", "https://es.internal:9200")
    monkeypatch.setenv(f"{PREFIX}API_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv(f"{PREFIX}VERIFY_CERTS", "false")
    monkeypatch.setenv(f"{PREFIX}PAGE_SIZE", "500")
    settings = DatasetsSettings().elasticsearch
    assert settings.page_size == 500
    kwargs = settings.client_kwargs()
    assert kwargs["api_key"] == KEY
    assert kwargs["verify_certs"] is False


@pytest.mark.unit
def test_a_refused_start_does_not_print_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}API_KEY", KEY)
    monkeypatch.setenv(f"{PREFIX}API_KEY_FILE", "/run/secrets/es")
    with pytest.raises(ValidationError, match="not both") as refused:
        DatasetsSettings()
    assert KEY not in str(refused.value)


@pytest.mark.integration
async def test_the_records_client_and_its_readiness_check_send_the_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with recording_server() as server:
        monkeypatch.setenv(f"{PREFIX}URL", server.url)
        monkeypatch.setenv(f"{PREFIX}API_KEY", KEY)
        records = ElasticsearchRecords(DatasetsSettings().elasticsearch)
        try:
            await records.ping()
        finally:
            await records.close()
    assert server.authorizations() and set(server.authorizations()) == {f"ApiKey {KEY}"}
