"""Telling a refused login from an outage, and naming the settings to fix."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from flywheel_contracts.runtime.kafka_access import check_access, env_names, refusal
from flywheel_contracts.runtime.settings import KafkaSettings

pytestmark = pytest.mark.unit

SECURED = KafkaSettings(
    bootstrap_servers="127.0.0.1:9092",
    security_protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="flywheel",
    sasl_password="the-password",
)
NAMES = env_names("FLYWHEEL_INGEST_")


def _error(code: int, text: str) -> KafkaError:
    return KafkaError(code, text)


def test_a_failed_login_names_the_user_the_mechanism_and_the_settings() -> None:
    error = _error(
        KafkaError._AUTHENTICATION,
        "sasl_ssl://127.0.0.1:9092/bootstrap: SASL authentication error: Authentication failed "
        "during authentication due to invalid credentials (after 308ms in state AUTH_REQ)",
    )
    problem = refusal([error], SECURED, NAMES)
    assert problem is not None
    assert "'flywheel' (SCRAM-SHA-512)" in problem
    assert "FLYWHEEL_INGEST_KAFKA__SASL_PASSWORD" in problem
    assert "after 308ms" not in problem  # librdkafka's state trailer is noise
    assert "the-password" not in problem


def test_an_untrusted_broker_certificate_names_the_ca_setting() -> None:
    error = _error(KafkaError._SSL, "ssl://x:1/bootstrap: SSL handshake failed: verify failed")
    problem = refusal([error], SECURED, NAMES)
    assert problem is not None
    assert "FLYWHEEL_INGEST_KAFKA__SSL_CA_LOCATION" in problem


def test_a_broker_that_is_down_is_not_a_refusal() -> None:
    errors = [
        _error(KafkaError._TRANSPORT, "127.0.0.1:9092/bootstrap: Connect failed"),
        _error(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
    ]
    assert refusal(errors, SECURED, NAMES) is None


def test_an_unreachable_broker_passes_the_check_for_the_outage_paths_to_handle() -> None:
    nobody = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_s=0.5)
    check_access(nobody, NAMES)  # no exception: nothing refused us
