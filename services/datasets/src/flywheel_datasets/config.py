"""Datasets settings: `FLYWHEEL_DATASETS_*`, nested groups with `__`
(e.g. ``FLYWHEEL_DATASETS_ELASTICSEARCH__INDEX``, ``FLYWHEEL_DATASETS_NMP__NEMO_BASE_URL``,
``FLYWHEEL_DATASETS_BUILD__NEAR_DUPLICATE_THRESHOLD``).

What a run may change lives in the run configuration (the defaults file plus the overrides of
`run.requested`); what belongs to the deployment (where the servers are, how hard to try, how
the data is cleaned) lives here.
"""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from flywheel_contracts.runtime import ServiceSettings
from flywheel_contracts.runtime.elasticsearch import ElasticsearchConnection
from flywheel_contracts.runtime.nmp import NmpSettings


class ElasticsearchSettings(ElasticsearchConnection):
    """Where ingest indexes the logged records, and how patiently they are read; the URL,
    credentials and TLS trust are the kit's (`ElasticsearchConnection`)."""

    index: str = Field(
        "flywheel",
        pattern=r"^[a-z0-9][a-z0-9._-]{0,200}$",
        description="The index ingest writes to (FLYWHEEL_INGEST_ELASTICSEARCH__INDEX).",
    )
    page_size: int = Field(1000, ge=10, le=10_000, description="Records per search page.")
    keep_alive: str = Field(
        "2m", pattern=r"^\d+(ms|s|m)$", description="Point-in-time / scroll keep-alive."
    )
    request_timeout_s: float = Field(60.0, gt=0)
    retry_attempts: int = Field(
        8,
        ge=1,
        le=20,
        description="Attempts per request before the log store counts as down (the default "
        "backoff rides out ~30 s, a node restart).",
    )
    retry_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubled each time.")
    retry_backoff_max_s: float = Field(8.0, ge=0)
    window_days: float | None = Field(
        None, gt=0, description="Only records logged this many days before the request; None: all."
    )


class PiiSettings(BaseModel):
    """Scrubbing of personal data from every dataset file (off unless enabled)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False


class BuildSettings(BaseModel):
    """How the logged records are cleaned, deduplicated and turned into ICL examples."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    near_duplicate_threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Jaccard similarity of the normalized user turns' 4-grams (UTF-8 bytes) at and "
        "above which two records count as near-duplicates.",
    )
    deduplication_process_min_limit: int = Field(
        20_000,
        ge=1,
        description="Reads of at least this many records (the run's limit) deduplicate in a "
        "process of their own, on a second core; smaller ones in the service, where starting a "
        "process (~0.3 s) would cost more than it saves.",
    )
    max_scan_factor: float = Field(
        4.0,
        ge=1,
        description="Read at most limit x this many records looking for `limit` usable ones.",
    )
    max_tool_properties: int = Field(
        8, ge=1, description="Tools with more parameters are refused (the blueprint's NIM limit)."
    )
    icl_pool_size: int = Field(
        5000,
        ge=1,
        description="Training records considered as ICL examples (a seeded sample, by tool).",
    )
    embedding_model: str = Field(
        "nvidia/llama-3.2-nv-embedqa-1b-v2", min_length=1, description="For semantic ICL."
    )
    embedding_batch_size: int = Field(64, ge=1, le=2048)
    embedding_base_url: str | None = Field(
        None,
        description="OpenAI-compatible base URL of the embeddings endpoint (`.../v1`; a URL "
        "without a path gets `/v1`); default the NIM proxy (`nmp.nim_base_url`).",
    )
    embedding_api_key: SecretStr | None = Field(
        None,
        description="Sent as `Authorization: Bearer` to the embeddings endpoint only. None: no key.",
    )
    embedding_api_key_file: Path | None = Field(
        None,
        description="A file holding the embeddings key (a mounted secret), read when the "
        "endpoint's client is made (at start); instead of `embedding_api_key`.",
    )
    embedding_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra, non-secret headers for the embeddings endpoint (a provider's own).",
    )
    embedding_ca_bundle: Path | None = Field(
        None,
        description="PEM file of the CAs trusted for the embeddings endpoint's HTTPS; default the "
        "system's.",
    )
    pii: PiiSettings = PiiSettings()


class DatasetsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_DATASETS_")

    service_name: str = "datasets"
    http_port: int = Field(8102, ge=0, le=65535)
    defaults_file: Path | None = Field(
        None, description="The run defaults (YAML); None uses the file shipped with the service."
    )
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    nmp: NmpSettings = NmpSettings()
    build: BuildSettings = BuildSettings()
    max_concurrent_builds: int = Field(1, ge=1, le=16)
    max_build_attempts: int = Field(
        3,
        ge=1,
        le=100,
        description="Builds of one run started without reaching an outcome (the instance died "
        "or lost the lease) before the run fails with `dataset.failed` instead of looping.",
    )
    reconcile_interval_s: float = Field(
        1.0, gt=0, description="How often unclaimed or abandoned jobs are looked for."
    )
    lease_s: float = Field(
        30.0, gt=0, description="A build whose owner stops renewing this long is taken over."
    )

    @property
    def embedding_base_url(self) -> str:
        return self.build.embedding_base_url or f"{self.nmp.nim_base_url}/v1"
