"""Settings come from FLYWHEEL_INGEST_* with nested groups."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flywheel_contracts.pii import PiiKind
from flywheel_ingest.config import IngestSettings

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    settings = IngestSettings()
    assert settings.service_name == "ingest"
    assert settings.consumer_group == "flywheel.ingest"
    assert settings.source_topic == "logs.raw"
    assert settings.elasticsearch.index == "flywheel"
    assert settings.max_line_bytes == 262_144
    assert not settings.pii.applies_to("order-tools")


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_INGEST_GROUP_ID", "flywheel.ingest-replay")
    monkeypatch.setenv("FLYWHEEL_INGEST_ELASTICSEARCH__INDEX", "logs-2025")
    monkeypatch.setenv("FLYWHEEL_INGEST_ELASTICSEARCH__REPLICAS", "1")
    monkeypatch.setenv("FLYWHEEL_INGEST_PII__WORKLOADS", '["customer-service-chat"]')
    monkeypatch.setenv("FLYWHEEL_INGEST_PII__KINDS", '["email", "card_number"]')
    monkeypatch.setenv("FLYWHEEL_INGEST_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    settings = IngestSettings()
    assert settings.consumer_group == "flywheel.ingest-replay"
    assert (settings.elasticsearch.index, settings.elasticsearch.replicas) == ("logs-2025", 1)
    assert settings.elasticsearch.template_name == "flywheel-ingest-logs-2025"
    assert settings.pii.applies_to("customer-service-chat")
    assert not settings.pii.applies_to("order-tools")
    assert settings.pii.kinds == {PiiKind.EMAIL, PiiKind.CARD_NUMBER}
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLYWHEEL_INGEST_ELASTICSEARCH__INDEX", "Upper-Case"),
        ("FLYWHEEL_INGEST_RETRY__BACKOFF_MAX_S", "0.01"),
        ("FLYWHEEL_INGEST_PII__KINDS", '["passport_number"]'),
    ],
)
def test_invalid_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        IngestSettings()
