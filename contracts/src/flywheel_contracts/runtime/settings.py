"""Settings every service shares; each service subclasses `ServiceSettings` with its own prefix.

Nested groups are plain models, so a service reads them from its own environment with `__`
between levels, e.g. ``FLYWHEEL_INGEST_KAFKA__BOOTSTRAP_SERVERS`` or
``FLYWHEEL_INGEST_DELIVERY__MAX_ATTEMPTS``.
"""

import os
import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel_contracts.primitives import ServiceName

KafkaConfigValue = str | int | float | bool
"""A librdkafka property value."""

_LOOPBACK = "127.0.0.1"


class KafkaSettings(BaseModel):
    """How to reach Kafka, with the security options passed through to librdkafka."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(f"{_LOOPBACK}:9092", min_length=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    extra: dict[str, KafkaConfigValue] = Field(
        default_factory=dict,
        description="Any other librdkafka property, applied last to every client.",
    )
    linger_ms: float = Field(
        2.0, ge=0, description="Producer batching delay; small because the control plane is chatty."
    )
    fetch_wait_max_ms: int = Field(
        20,
        ge=0,
        description="How long the broker may hold an empty fetch; bounds the idle-to-first-event hop.",
    )
    message_max_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1_000,
        le=1_000_000_000,
        description="Biggest record the producers send; set it to the broker's (or topic's) "
        "`message.max.bytes` (the local stack's: 4 MiB). Dead letters are truncated to fit it.",
    )
    session_timeout_ms: int = Field(10_000, ge=1_000)
    max_poll_interval_ms: int = Field(300_000, ge=1_000)
    request_timeout_s: float = Field(
        2.0, gt=0, description="Admin and metadata calls (topic creation, readiness) give up after."
    )
    topic_prefix: str = Field(
        "",
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Namespaces every topic (`<prefix><topic>`), e.g. one flywheel per test run "
        "or tenant on a shared cluster; empty in a normal deployment.",
    )

    def topic(self, name: str) -> str:
        """The broker-side name of the catalog topic `name`."""
        return f"{self.topic_prefix}{name}"

    def client_config(self) -> dict[str, KafkaConfigValue]:
        """Properties common to producers, consumers and admin clients."""
        config: dict[str, KafkaConfigValue] = {
            "bootstrap.servers": self.bootstrap_servers,
            # faststream validates the protocol against its lower-case enum.
            "security.protocol": self.security_protocol.lower(),
        }
        optional: dict[str, str | SecretStr | None] = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password,
        }
        for key, value in optional.items():
            if value is not None:
                config[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return {**config, **self.extra}


class MongoSettings(BaseModel):
    """Where the service keeps its state (MongoDB, or FerretDB locally)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr = Field(SecretStr(f"mongodb://{_LOOPBACK}:27017"))
    database: str = Field("flywheel", min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    timeout_s: float = Field(
        5.0, gt=0, description="Server selection and connect timeout; readiness uses a shorter one."
    )


class DeliverySettings(BaseModel):
    """How a failing handler is retried before its message is dead-lettered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(5, ge=1, le=50, description="Handler attempts, the first included.")
    backoff_base_s: float = Field(0.2, ge=0, description="Delay before the second attempt.")
    backoff_max_s: float = Field(5.0, ge=0, description="Upper bound of one retry delay.")


class IdempotencySettings(BaseModel):
    """How long processed event ids are remembered (FerretDB has no TTL index)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retention_s: float = Field(7 * 24 * 3600.0, gt=0)
    sweep_interval_s: float = Field(3600.0, gt=0)


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ServiceSettings(BaseSettings):
    """The part of every service's configuration the kit needs."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    service_name: ServiceName = Field(description="Names the consumer group `flywheel.<name>`.")
    instance_id: str = Field(default_factory=_default_instance_id, min_length=1, max_length=128)
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    http_host: str = _LOOPBACK
    http_port: int = Field(8000, ge=0, le=65535)
    shutdown_timeout_s: float = Field(
        20.0, gt=0, description="Time in-flight handlers get to finish on SIGTERM."
    )
    kafka: KafkaSettings = KafkaSettings()
    mongo: MongoSettings = MongoSettings()
    delivery: DeliverySettings = DeliverySettings()
    idempotency: IdempotencySettings = IdempotencySettings()

    @property
    def consumer_group(self) -> str:
        return f"flywheel.{self.service_name}"
