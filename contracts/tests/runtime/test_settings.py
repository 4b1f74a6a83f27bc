import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from flywheel_contracts.runtime.publisher import producer_config
from flywheel_contracts.runtime.settings import KafkaSettings, ServiceSettings

pytestmark = pytest.mark.unit


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_INGEST_")

    service_name: str = "ingest"


def test_a_service_reads_nested_settings_under_its_own_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_INGEST_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9093,kafka-2:9093")
    monkeypatch.setenv("FLYWHEEL_INGEST_DELIVERY__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("FLYWHEEL_INGEST_LOG_FORMAT", "console")
    monkeypatch.setenv("FLYWHEEL_EVALUATOR_HTTP_PORT", "9999")  # another service's

    settings = IngestSettings()

    assert settings.kafka.bootstrap_servers == "kafka-1:9093,kafka-2:9093"
    assert settings.delivery.max_attempts == 3
    assert settings.log_format == "console"
    assert settings.http_port == 8000
    assert settings.consumer_group == "flywheel.ingest"


def test_security_options_pass_through_to_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SECURITY_PROTOCOL": "SASL_SSL",
        "SASL_MECHANISM": "SCRAM-SHA-512",
        "SASL_USERNAME": "flywheel",
        "SASL_PASSWORD": "s3cret",
        "SSL_CA_LOCATION": "/etc/ca.pem",
        "EXTRA": '{"socket.keepalive.enable": true}',
    }.items():
        monkeypatch.setenv(f"FLYWHEEL_INGEST_KAFKA__{name}", value)

    config = IngestSettings().kafka.client_config()

    assert config == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "flywheel",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
        "socket.keepalive.enable": True,
    }


def test_the_password_is_not_shown_in_the_settings_repr() -> None:
    settings = KafkaSettings(sasl_password="s3cret")
    assert "s3cret" not in repr(settings)


def test_the_producer_is_idempotent_with_acks_all_unless_overridden_on_purpose() -> None:
    assert producer_config(KafkaSettings(), "ingest.1")["enable.idempotence"] is True
    assert producer_config(KafkaSettings(), "ingest.1")["acks"] == "all"
    tuned = KafkaSettings(extra={"linger.ms": 50})
    assert producer_config(tuned, "ingest.1")["linger.ms"] == 50


def test_a_service_name_must_be_a_plain_identifier() -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(service_name="Not A Name")
