"""Is Kafka refusing *us*? A wrong password or CA is a configuration error, not an outage.

librdkafka treats a failed login like a lost connection: it retries for ever and the caller
only sees timeouts. A service or CLI that waited would look like one waiting out an outage
while it never will get in. So before a component starts, one metadata request is made and the
client's error callbacks are read: an authentication or TLS failure ends the start at once with
a message that names the settings to fix; an unreachable broker is left to the normal paths.
"""

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from flywheel_contracts.errors import PermanentError
from flywheel_contracts.runtime.settings import KafkaSettings

_QUIET = logging.getLogger("flywheel.kafka_access")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False  # the refusal is reported once, by the caller, not per retry


class KafkaAccessRefused(PermanentError):
    """Kafka answered, and refused this client's credentials or certificates."""


SettingName = Callable[[str], str]
"""The name a user sets a `KafkaSettings` field by, e.g. `sasl_password` ->
`FLYWHEEL_INGEST_KAFKA__SASL_PASSWORD`."""


def env_names(env_prefix: str) -> SettingName:
    """Setting names of a component reading its Kafka settings from `<env_prefix>KAFKA__*`."""
    return lambda field: f"{env_prefix}KAFKA__{field.upper()}"


def refusal(errors: list[KafkaError], kafka: KafkaSettings, setting: SettingName) -> str | None:
    """Why Kafka refused the client configured by `kafka`, from its error callbacks; None when
    none of them is a refusal."""
    for error in errors:
        code = error.code()
        if code == KafkaError._AUTHENTICATION:
            return (
                f"Kafka at {kafka.bootstrap_servers} refused the login of "
                f"{kafka.sasl_username!r} ({kafka.sasl_mechanism or 'no SASL mechanism'}): "
                f"{_reason(error)}; check {setting('sasl_username')}, {setting('sasl_password')} "
                f"and {setting('sasl_mechanism')}"
            )
        if code == KafkaError._SSL:
            return (
                f"the TLS handshake with Kafka at {kafka.bootstrap_servers} failed: "
                f"{_reason(error)}; check {setting('ssl_ca_location')} (the CA that signed the "
                f"broker's certificate) and, for mutual TLS, {setting('ssl_certificate_location')}"
                f" and {setting('ssl_key_location')}"
            )
    return None


def check_access(kafka: KafkaSettings, setting: SettingName) -> None:
    """Raise `KafkaAccessRefused` when Kafka refuses this client's login or TLS; return when it
    lets the client in, or cannot be reached at all (an outage, for the caller to handle)."""
    errors: list[KafkaError] = []
    admin = AdminClient(kafka.client_config(), error_cb=errors.append, logger=_QUIET)
    try:
        admin.list_topics(timeout=kafka.request_timeout_s)
    except KafkaException:
        admin.poll(0)  # serves the error callbacks that say why
        problem = refusal(errors, kafka, setting)
        if problem is not None:
            raise KafkaAccessRefused(problem) from None


def _reason(error: KafkaError) -> str:
    # librdkafka prefixes the broker's address and appends the state it failed in; the middle
    # part is the useful sentence.
    text = error.str()
    text = text.split(": ", 1)[1] if ": " in text else text
    return text.split(" (after ", 1)[0]
