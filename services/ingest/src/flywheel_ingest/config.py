"""Ingest settings: `FLYWHEEL_INGEST_*`, nested groups with `__`
(e.g. ``FLYWHEEL_INGEST_ELASTICSEARCH__INDEX``, ``FLYWHEEL_INGEST_PII__WORKLOADS='["chat"]'``)."""

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from flywheel_contracts.pii import PiiKind
from flywheel_contracts.runtime import ServiceSettings
from flywheel_contracts.traffic import DEFAULT_MAX_LINE_BYTES

ALL_WORKLOADS = "*"

_MIB = 1024 * 1024


class ElasticsearchSettings(BaseModel):
    """Where records are indexed, and how the index created from the template is shaped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr = Field(
        SecretStr("http://127.0.0.1:9200"), description="May carry credentials, hence secret."
    )
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


class IntakeSettings(BaseModel):
    """`POST /v1/logs`: NDJSON from applications that run no log shipper."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = Field(16 * _MIB, ge=1024)
    max_line_bytes: int = Field(
        900_000,
        ge=1024,
        description="Under the producer's default 1,000,000-byte message limit. Lines over "
        "ingest's own `max_line_bytes` are still forwarded, to be rejected as oversize.",
    )
    token: SecretStr | None = Field(
        None, description="When set, requests must carry `Authorization: Bearer <token>`."
    )


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
    group_id: str | None = Field(
        None, description="Consumer group; default `flywheel.ingest`. Tests isolate with their own."
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

    @property
    def consumer_group(self) -> str:
        return self.group_id or super().consumer_group
