import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from flywheel_contracts.runtime.consumer import consumer_config
from flywheel_contracts.runtime.consumer_health import ConsumerLimits
from flywheel_contracts.runtime.publisher import producer_config
from flywheel_contracts.runtime.settings import (
    DeliverySettings,
    HealthSettings,
    HookSettings,
    KafkaSettings,
    ServiceSettings,
)

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


def test_consumer_health_defaults_follow_the_redelivery_cap_and_the_max_poll_interval() -> None:
    assert IngestSettings().consumer_limits == ConsumerLimits(
        ready_after_s=90.0, live_after_s=300.0, settle_grace_s=90.0, require_assignment=True
    )
    slow_retries = IngestSettings(delivery=DeliverySettings(backoff_max_s=100))
    assert slow_retries.consumer_limits.ready_after_s == 130.0
    short_poll = IngestSettings(kafka=KafkaSettings(max_poll_interval_ms=60_000))
    assert (short_poll.consumer_limits.ready_after_s, short_poll.consumer_limits.live_after_s) == (
        60.0,
        60.0,
    )


def test_consumer_health_and_the_stall_hook_are_read_from_the_services_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert IngestSettings().testing.stall_hook is False
    monkeypatch.setenv("FLYWHEEL_INGEST_HEALTH__READY_AFTER_S", "20")
    monkeypatch.setenv("FLYWHEEL_INGEST_HEALTH__LIVE_AFTER_S", "45")
    monkeypatch.setenv("FLYWHEEL_INGEST_HEALTH__STATISTICS_INTERVAL_MS", "1000")
    monkeypatch.setenv("FLYWHEEL_INGEST_HEALTH__REQUIRE_ASSIGNMENT", "false")
    monkeypatch.setenv("FLYWHEEL_INGEST_TESTING__STALL_HOOK", "true")

    settings = IngestSettings()

    assert settings.consumer_limits == ConsumerLimits(
        ready_after_s=20.0, live_after_s=45.0, settle_grace_s=20.0, require_assignment=False
    )
    assert settings.health.statistics_interval_ms == 1000
    assert settings.testing.stall_hook is True


@pytest.mark.parametrize(
    ("health", "message"),
    [
        (HealthSettings(ready_after_s=9), "at least twice HEALTH__STATISTICS_INTERVAL_MS"),
        (HealthSettings(settle_grace_s=5), "at least twice HEALTH__STATISTICS_INTERVAL_MS"),
        (HealthSettings(ready_after_s=120, live_after_s=60), "below HEALTH__READY_AFTER_S"),
    ],
)
def test_consumer_health_intervals_that_cannot_work_are_refused(
    health: HealthSettings, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        IngestSettings(health=health)


def test_the_stall_hook_is_refused_on_an_address_the_network_reaches() -> None:
    hooked = HookSettings(stall_hook=True)
    assert IngestSettings(testing=hooked, http_host="127.0.0.1").testing.stall_hook
    with pytest.raises(ValidationError, match="which is not a loopback address"):
        IngestSettings(testing=hooked, http_host="0.0.0.0")


def test_a_refused_start_does_not_print_the_secrets_it_was_given() -> None:
    with pytest.raises(ValidationError) as refused:
        IngestSettings(kafka={"sasl_password": "planted-secret", "session_timeout_ms": 1})
    assert "planted-secret" not in str(refused.value)


def test_the_consumer_group_is_named_after_the_service_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert IngestSettings().consumer_group == "flywheel.ingest"
    monkeypatch.setenv("FLYWHEEL_INGEST_GROUP_ID", "flywheel.ingest.replay")
    settings = IngestSettings()
    assert settings.consumer_group == "flywheel.ingest.replay"
    assert settings.group_membership()["group.id"] == "flywheel.ingest.replay"


def test_flywheels_under_different_topic_prefixes_never_share_a_consumer_group() -> None:
    ours = IngestSettings(kafka={"topic_prefix": "team-a."})
    theirs = IngestSettings(kafka={"topic_prefix": "team-b."})
    assert ours.consumer_group == "team-a.flywheel.ingest"
    assert ours.consumer_group != theirs.consumer_group
    assert ours.group_membership()["group.id"] == ours.consumer_group


def test_a_consumer_finds_a_subscribed_topic_created_late_within_seconds() -> None:
    config = consumer_config(IngestSettings())
    # librdkafka's default, 300 s, is how long a topic missing from the first metadata waited.
    assert int(config["topic.metadata.refresh.interval.ms"]) <= 10_000
