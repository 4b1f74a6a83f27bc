"""Where the CLI finds Kafka: the services' `KafkaSettings`, read from the environment.

Security options come from ``FLYWHEEL_KAFKA__*`` (e.g. ``FLYWHEEL_KAFKA__SECURITY_PROTOCOL``,
``FLYWHEEL_KAFKA__SASL_USERNAME``), the same names a service without its own prefix reads; the
broker address from ``--bootstrap`` or ``FLYWHEEL_KAFKA_BOOTSTRAP``.
"""

from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel_contracts.runtime.settings import KafkaSettings

BOOTSTRAP_ENV = "FLYWHEEL_KAFKA_BOOTSTRAP"
ENV_PREFIX = "FLYWHEEL_"


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()


def kafka_settings(bootstrap: str | None) -> KafkaSettings:
    """The environment's Kafka settings, with `bootstrap` (when given) as the broker list."""
    kafka = CliSettings().kafka
    if bootstrap is None:
        return kafka
    return KafkaSettings.model_validate({**kafka.model_dump(), "bootstrap_servers": bootstrap})
