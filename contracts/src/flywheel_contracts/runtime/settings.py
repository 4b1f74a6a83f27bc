"""Settings every service shares; each service subclasses `ServiceSettings` with its own prefix.

Nested groups are plain models, so a service reads them from its own environment with `__`
between levels, e.g. ``FLYWHEEL_INGEST_KAFKA__BOOTSTRAP_SERVERS`` or
``FLYWHEEL_INGEST_DELIVERY__MAX_ATTEMPTS``.
"""

import os
import socket
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel_contracts.primitives import ServiceName
from flywheel_contracts.runtime.consumer_health import ConsumerLimits
from flywheel_contracts.runtime.network import is_loopback

KafkaConfigValue = str | int | float | bool
"""A librdkafka property value."""

_LOOPBACK = "127.0.0.1"

REDELIVERY_MAX_DELAY_S = 60.0
"""Cap of the delay between redelivery rounds of a message waiting on an outage (the first
delay is `DELIVERY__BACKOFF_MAX_S`, doubling per round)."""
READY_MARGIN_S = 30.0
"""With the redelivery cap, the default `HEALTH__READY_AFTER_S` (60 + 30 s): how long the
handling of one message, its in-handler retries included, may keep the loop from polling before
the consumer counts as unready. The loop does not wait out a redelivery delay between polls (the
message's partition is paused instead), so the cap's share is headroom, not a pause."""


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
    assignment_strategy: Literal["cooperative-sticky", "range", "roundrobin"] = Field(
        "cooperative-sticky",
        description="How a group shares partitions. Cooperative-sticky moves only the partitions "
        "that change owner, so the others keep consuming through a rebalance. A group's members "
        "must agree: change it for all instances at once.",
    )
    static_membership: bool = Field(
        False,
        description="Join as a static member (`group.instance.id` = `<service>.<INSTANCE_ID>`): "
        "an instance restarted within `session_timeout_ms` gets its partitions back at once, "
        "without a rebalance. Needs an INSTANCE_ID that survives restarts and is unique (a "
        "StatefulSet's pod name); a second live instance with the same id is fenced.",
    )
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
    topic_replication_factor: int | None = Field(
        None,
        ge=1,
        le=32,
        description="Replicas of each topic the services create; None: the cluster's "
        "`default.replication.factor`.",
    )
    topic_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        le=32,
        description="`min.insync.replicas` of each topic the services create; None: the cluster's "
        "default.",
    )

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Self:
        replicas, insync = self.topic_replication_factor, self.topic_min_insync_replicas
        if replicas is not None and insync is not None and insync > replicas:
            raise ValueError(
                "topic_min_insync_replicas must not exceed topic_replication_factor: "
                "no write could ever be acknowledged"
            )
        return self

    def topic(self, name: str) -> str:
        """The broker-side name of the catalog topic `name`."""
        return f"{self.topic_prefix}{name}"

    def client_config(self) -> dict[str, KafkaConfigValue]:
        """Properties common to producers, consumers and admin clients."""
        config: dict[str, KafkaConfigValue] = {
            "bootstrap.servers": self.bootstrap_servers,
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


class HealthSettings(BaseModel):
    """When the consumer counts as stalled, from librdkafka's statistics (which it only reports
    while the service polls): `/health/ready` fails its `consumer` check, then `/health/live`
    answers 503."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    statistics_interval_ms: int = Field(
        5_000,
        ge=100,
        le=60_000,
        description="How often the consumer reports (librdkafka `statistics.interval.ms`); the "
        "intervals below must be at least twice this.",
    )
    ready_after_s: float | None = Field(
        None,
        gt=0,
        description="Unready when the consumer has not polled for this long. Default: the "
        "redelivery delay cap (60 s, or DELIVERY__BACKOFF_MAX_S if higher) + 30 s, i.e. 90 s, "
        "and never above LIVE_AFTER_S.",
    )
    live_after_s: float | None = Field(
        None,
        gt=0,
        description="Not alive (503, restart me) when the consumer has not polled for this long. "
        "Default: KAFKA__MAX_POLL_INTERVAL_MS (300 s), after which librdkafka leaves the group.",
    )
    settle_grace_s: float | None = Field(
        None,
        gt=0,
        description="Unready when the consumer has not been in its group (state up, join state "
        "steady) with partitions assigned for this long. Default: READY_AFTER_S.",
    )
    require_assignment: bool = Field(
        True,
        description="Whether an instance holding no partition is unready; set false when more "
        "instances run than the topics have partitions.",
    )


class HookSettings(BaseModel):
    """Test hooks. Off unless a test turns them on; never enable them in a deployment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stall_hook: bool = Field(
        False,
        description="Adds `POST /testing/stall` and `POST /testing/resume`: while stalled, the "
        "consumer's next message waits in front of its handler, so the consumer stops polling.",
    )


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ServerSettings(BaseModel):
    """Connection timeouts of the HTTP server, so that idle or slow clients cannot hold
    connections (and file descriptors) open."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_alive_timeout_s: int = Field(
        5, ge=1, le=300, description="An idle connection between requests is closed after this."
    )
    head_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A connection must send a request's head (request line and headers) within "
        "this long of opening, or of starting its next request; else it is closed.",
    )


class ServiceSettings(BaseSettings):
    """The part of every service's configuration the kit needs."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        # A refused start must not print the values it was given: they hold keys and passwords.
        # Pydantic honours this on the outermost class only; services' subclasses inherit it.
        hide_input_in_errors=True,
    )

    service_name: ServiceName = Field(
        description="Names the consumer group `<KAFKA__TOPIC_PREFIX>flywheel.<name>`."
    )
    group_id: str | None = Field(
        None,
        min_length=1,
        description="The consumer group, when not `<KAFKA__TOPIC_PREFIX>flywheel.<service_name>`.",
    )
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
    health: HealthSettings = HealthSettings()
    testing: HookSettings = HookSettings()
    server: ServerSettings = ServerSettings()

    @property
    def consumer_group(self) -> str:
        """Named under the topic prefix like the topics it reads: flywheels that share a cluster
        under different prefixes never share a group. A shared group would make every member's
        rebalance wait for the others, up to `max_poll_interval_ms` for one that heartbeats
        but no longer polls."""
        return self.group_id or f"{self.kafka.topic_prefix}flywheel.{self.service_name}"

    def group_membership(self) -> dict[str, KafkaConfigValue]:
        """How this instance joins its consumer group: the one place every consumer of the
        services takes these properties from."""
        kafka = self.kafka
        membership: dict[str, KafkaConfigValue] = {
            "group.id": self.consumer_group,
            "client.id": f"{self.service_name}.{self.instance_id}",
            "session.timeout.ms": kafka.session_timeout_ms,
            "max.poll.interval.ms": kafka.max_poll_interval_ms,
            "partition.assignment.strategy": kafka.assignment_strategy,
        }
        if kafka.static_membership:
            membership["group.instance.id"] = f"{self.service_name}.{self.instance_id}"
        return membership

    @property
    def env_prefix(self) -> str:
        """Where this service reads its settings, e.g. `FLYWHEEL_INGEST_`, to name them in
        errors."""
        return str(self.model_config.get("env_prefix") or "")

    @property
    def redelivery_max_delay_s(self) -> float:
        return max(self.delivery.backoff_max_s, REDELIVERY_MAX_DELAY_S)

    @property
    def consumer_limits(self) -> ConsumerLimits:
        """`HEALTH__*` with the defaults derived from the delivery and Kafka settings."""
        health = self.health
        live = health.live_after_s or self.kafka.max_poll_interval_ms / 1000
        ready = health.ready_after_s or min(self.redelivery_max_delay_s + READY_MARGIN_S, live)
        return ConsumerLimits(
            ready_after_s=ready,
            live_after_s=live,
            settle_grace_s=health.settle_grace_s or ready,
            require_assignment=health.require_assignment,
        )

    @model_validator(mode="after")
    def _hooks_on_loopback_only(self) -> Self:
        # The hooks change what the service does, with no credential: never from the network.
        if self.testing.stall_hook and not is_loopback(self.http_host):
            raise ValueError(
                f"TESTING__STALL_HOOK adds unauthenticated endpoints; it is refused with "
                f"HTTP_HOST={self.http_host}, which is not a loopback address"
            )
        return self

    @model_validator(mode="after")
    def _consistent_health(self) -> Self:
        limits = self.consumer_limits
        floor_s = 2 * self.health.statistics_interval_ms / 1000
        if min(limits.ready_after_s, limits.settle_grace_s) < floor_s:
            raise ValueError(
                f"HEALTH__READY_AFTER_S and HEALTH__SETTLE_GRACE_S must be at least twice "
                f"HEALTH__STATISTICS_INTERVAL_MS ({floor_s:g}s): the consumer reports only that often"
            )
        if limits.live_after_s < limits.ready_after_s:
            raise ValueError(
                f"HEALTH__LIVE_AFTER_S ({limits.live_after_s:g}s) is below HEALTH__READY_AFTER_S "
                f"({limits.ready_after_s:g}s): a stalled consumer turns unready before it is "
                "declared dead"
            )
        return self
