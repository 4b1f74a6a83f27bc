"""Ingest settings: `FLYWHEEL_INGEST_*`, nested groups with `__`
(e.g. ``FLYWHEEL_INGEST_ELASTICSEARCH__INDEX``, ``FLYWHEEL_INGEST_PII__WORKLOADS='["chat"]'``)."""

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from flywheel_contracts.pii import PiiKind
from flywheel_contracts.runtime import ServiceSettings
from flywheel_contracts.runtime.elasticsearch import ElasticsearchConnection
from flywheel_contracts.runtime.secrets import SecretFileError, read_secret_file
from flywheel_contracts.traffic import DEFAULT_MAX_LINE_BYTES
from flywheel_ingest.security import check_intake_exposure

ALL_WORKLOADS = "*"
ALL_CLIENTS = "*"

_MIB = 1024 * 1024


class ElasticsearchSettings(ElasticsearchConnection):
    """Where records are indexed, and how the index created from the template is shaped; the
    URL, credentials and TLS trust are the kit's (`ElasticsearchConnection`)."""

    index: str = Field(
        "flywheel",
        pattern=r"^[a-z0-9][a-z0-9._-]{0,200}$",
        description="Index the records go to; the blueprint's default name.",
    )
    shards: int = Field(1, ge=1, le=64)
    replicas: int = Field(0, ge=0, le=10, description="0 suits a single node.")
    refresh_interval: str = Field(
        "1s", pattern=r"^(-1|\d+(ms|s|m))$", description="Bounds how soon a record is searchable."
    )
    request_timeout_s: float = Field(30.0, gt=0)

    @property
    def template_name(self) -> str:
        return f"flywheel-ingest-{self.index}"


class BatchSettings(BaseModel):
    """A bulk request is sent when any limit is reached, or when the batch is `max_wait_s` old."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # ~5 MB requests: larger ones trip the circuit breaker of a small-heap Elasticsearch.
    max_records: int = Field(1000, ge=1, le=100_000)
    max_bytes: int = Field(8 * _MIB, ge=1024, description="Raw bytes of the lines in one batch.")
    # Low: at a trickle a batch leaves almost at once; under load batches fill by size anyway.
    max_wait_s: float = Field(0.05, gt=0, le=60)
    max_in_flight: int = Field(
        3, ge=1, le=16, description="Batches being delivered while the next one is read."
    )


class RetrySettings(BaseModel):
    """Backoff while Elasticsearch or Kafka is unreachable; consumption pauses meanwhile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backoff_initial_s: float = Field(0.2, gt=0)
    backoff_max_s: float = Field(5.0, gt=0)
    pause_after_s: float = Field(
        5.0,
        gt=0,
        description="How long a full pipeline waits on its oldest batch before pausing the "
        "partitions (a slow bulk request is not yet an outage).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "RetrySettings":
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self


class PiiSettings(BaseModel):
    """Redaction before indexing, for the listed workloads only (`*`: every workload)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workloads: frozenset[str] = frozenset()
    kinds: frozenset[PiiKind] = frozenset(
        {PiiKind.EMAIL, PiiKind.PHONE, PiiKind.CARD_NUMBER, PiiKind.API_KEY, PiiKind.BEARER_TOKEN}
    )

    def applies_to(self, workload_id: str) -> bool:
        return bool(self.kinds) and (
            workload_id in self.workloads or ALL_WORKLOADS in self.workloads
        )


TOKEN_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""A scoped token's name: it travels in a Kafka header and in logs, so it must be plain."""


def _non_blank(token: SecretStr | None, setting: str) -> SecretStr | None:
    """A configured token of only whitespace would be guessable; it is refused, not ignored."""
    if token is not None and not token.get_secret_value().strip():
        raise ValueError(f"{setting} is set but empty; set a token or leave it unset")
    return token


class ScopedToken(BaseModel):
    """`INTAKE__TOKENS__<NAME>__*`: a token accepted for the listed clients' records only."""

    # An error must not print the input: it holds the secret.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    token: SecretStr | None = Field(None, description="The secret itself.")
    token_file: Path | None = Field(
        None,
        description="A file holding the secret (a mounted secret), read once at start; its "
        "surrounding whitespace is dropped.",
    )
    clients: frozenset[str] = Field(
        min_length=1,
        description='Client ids whose records this token may write; `["*"]` for every client.',
    )

    @model_validator(mode="before")
    @classmethod
    def _read_token_file(cls, data: Any) -> Any:
        # Read here, once, so that a missing or empty secret file stops the start.
        if not isinstance(data, dict):
            return data
        token, token_file = data.get("token"), data.get("token_file")
        if token_file is None:
            return data
        if token is not None:
            raise ValueError("set TOKEN or TOKEN_FILE, not both")
        try:
            secret = read_secret_file(Path(token_file))
        except SecretFileError as exc:
            raise ValueError(f"TOKEN_FILE cannot be read: {exc}") from None
        return {**data, "token": SecretStr(secret.get_secret_value().strip())}

    @model_validator(mode="after")
    def _has_token(self) -> "ScopedToken":
        if self.token is None:
            raise ValueError("a scoped intake token needs TOKEN or TOKEN_FILE")
        _non_blank(self.token, "TOKEN")
        return self

    @property
    def secret(self) -> SecretStr:
        assert self.token is not None  # checked by `_has_token`
        return self.token

    def allows(self, client_id: str) -> bool:
        return client_id in self.clients or ALL_CLIENTS in self.clients


class RateLimitSettings(BaseModel):
    """Requests per token (one bucket per token; one for the open intake), refused with 429."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_s: float | None = Field(
        None, gt=0, description="Sustained rate a token may send; none: no limit (the default)."
    )
    burst: int = Field(100, ge=1, description="Requests a token may send at once after being idle.")
    failed_auth_per_s: float = Field(
        1.0,
        gt=0,
        description="Sustained rate of requests without a valid token one address may send; "
        "past it every request from there is answered 429 unchecked, so tokens cannot be guessed "
        "at speed (a producer sharing the address retries after `Retry-After`).",
    )
    failed_auth_burst: int = Field(
        20, ge=1, description="Requests without a valid token one address may send at once."
    )


class IntakeSettings(BaseModel):
    """The HTTP intake: `POST /v1/logs` and the producers' routes."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    max_body_bytes: int = Field(16 * _MIB, ge=1024)
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Time a request's body may take to arrive after its head; later: 408 and "
        "the connection is closed (16 MiB in 30 s is a 4.5 Mbit/s floor).",
    )
    max_line_bytes: int = Field(
        900_000,
        ge=1024,
        description="Under the producer's default 1,000,000-byte message limit. Lines over "
        "ingest's own `max_line_bytes` are still forwarded, to be rejected as oversize.",
    )
    max_lines: int = Field(
        10_000,
        ge=1,
        description="Lines (or a producer's items) one request may carry; more is refused with "
        "413, whole.",
    )
    token: SecretStr | None = Field(
        None,
        description="A token for every client's records (`Bearer`, `ApiKey`, basic auth's "
        "password). Without any token the intake is open, which only a loopback host allows.",
    )
    tokens: dict[str, ScopedToken] = Field(
        default_factory=dict,
        description="Named tokens, each for some clients' records only; the name (never the "
        "secret) travels with the lines so that ingest can check each record's client.",
    )
    open: bool = Field(
        False,
        description="Accept unauthenticated writes on a non-loopback host anyway (e.g. a "
        "container whose port is published on loopback only). Off: such a start is refused.",
    )
    rate_limit: RateLimitSettings = RateLimitSettings()

    @field_validator("token")
    @classmethod
    def _token_not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        return _non_blank(token, "FLYWHEEL_INGEST_INTAKE__TOKEN")

    @field_validator("tokens")
    @classmethod
    def _plain_names(cls, tokens: dict[str, ScopedToken]) -> dict[str, ScopedToken]:
        for name in tokens:
            if not re.fullmatch(TOKEN_NAME_PATTERN, name):
                raise ValueError(f"intake token name {name[:80]!r} must match {TOKEN_NAME_PATTERN}")
        return tokens

    @model_validator(mode="after")
    def _distinct_secrets(self) -> "IntakeSettings":
        # One secret under two names would make its scope depend on which name is found first.
        secrets = [scoped.secret.get_secret_value() for scoped in self.tokens.values()]
        if self.token is not None:
            secrets.append(self.token.get_secret_value())
        if len(set(secrets)) < len(secrets):
            raise ValueError("two intake tokens have the same secret; give each its own")
        return self

    @property
    def authenticated(self) -> bool:
        """Whether requests need a token (any token configured)."""
        return self.token is not None or bool(self.tokens)


class NatSettings(BaseModel):
    """NeMo Agent Toolkit's Data Flywheel exporter (`/_bulk`, `/{index}/_doc`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow_workload_id: str = Field(
        "workflow",
        min_length=1,
        max_length=256,
        description="Stands for NAT's `<workflow>` placeholder, the workload id it gives the "
        "calls of a workflow's top level.",
    )


class OtlpSettings(BaseModel):
    """OTLP/HTTP traces (`/v1/traces`): which span or resource attributes name the workload and
    the client of an LLM span. The first one present wins, each looked up on the span, then on
    its resource; values are mapped into the identifier alphabet (see `producers.otlp`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workload_attributes: tuple[str, ...] = ("gen_ai.agent.name", "service.name")
    client_attributes: tuple[str, ...] = ("flywheel.client_id", "service.namespace")
    default_client_id: str | None = Field(
        None, max_length=256, description="When no client attribute is present."
    )


class RelaySettings(BaseModel):
    """NeMo Relay events (`/v1/relay/events`): LLM start/end pairs become records. A configured
    id wins over what the events say."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workload_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:@/+-]{1,256}$",
        description="Every call's workload; default: the name of its enclosing agent scope.",
    )
    client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:@/+-]{1,256}$",
        description="Every call's client; default: the `flywheel.client_id` metadata of the "
        "call or of its nearest scope that has it.",
    )


class ProducerSettings(BaseModel):
    """How each real producer's items map to records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nat: NatSettings = NatSettings()
    otlp: OtlpSettings = OtlpSettings()
    relay: RelaySettings = RelaySettings()


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_INGEST_")

    service_name: str = "ingest"
    http_port: int = Field(8001, ge=0, le=65535)
    source_topic: str = Field(
        "logs.raw", min_length=1, description="Read (and written by the intake) under the prefix."
    )
    max_line_bytes: int = Field(
        DEFAULT_MAX_LINE_BYTES, ge=1024, description="Longer lines are rejected as oversize."
    )
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    batch: BatchSettings = BatchSettings()
    retry: RetrySettings = RetrySettings()
    pii: PiiSettings = PiiSettings()
    intake: IntakeSettings = IntakeSettings()
    producers: ProducerSettings = ProducerSettings()

    @model_validator(mode="after")
    def _intake_exposure(self) -> "IngestSettings":
        # Refuses, at start, an intake open to the network (see `security`).
        self.intake_warning()
        return self

    def intake_warning(self) -> str | None:
        """What to warn about the intake's exposure at start, if anything."""
        return check_intake_exposure(
            self.http_host, authenticated=self.intake.authenticated, open_allowed=self.intake.open
        )
