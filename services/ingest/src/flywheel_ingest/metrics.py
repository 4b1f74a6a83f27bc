"""Ingest's Prometheus metrics (default registry, next to the kit's delivery metrics)."""

from prometheus_client import Counter, Gauge, Histogram

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.pii import PiiKind

RECORDS = Counter(
    "flywheel_ingest_records_total",
    "Lines read from the source topic, by outcome: indexed, duplicate (already stored), rejected.",
    ["outcome"],
)
REJECTED = Counter(
    "flywheel_ingest_rejected_total", "Lines sent to logs.rejected, by reason.", ["reason"]
)
PII_REDACTED = Counter(
    "flywheel_ingest_pii_redacted_total", "PII occurrences replaced before indexing.", ["kind"]
)
STORE_RETRIES = Counter(
    "flywheel_ingest_store_retries_total",
    "Bulk requests (or parts of them) retried because Elasticsearch could not take them.",
)
OUTBOX_RETRIES = Counter(
    "flywheel_ingest_outbox_retries_total",
    "Publishes to logs.rejected or records.ingested retried because Kafka did not acknowledge.",
)
PAUSED = Gauge(
    "flywheel_ingest_consumption_paused", "1 while consumption is paused for a slow dependency."
)
BATCH_SECONDS = Histogram(
    "flywheel_ingest_batch_seconds",
    "From a batch being read to all its effects acknowledged (retries included).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
BATCH_RECORDS = Histogram(
    "flywheel_ingest_batch_records",
    "Lines per batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
INTAKE_LINES = Counter(
    "flywheel_ingest_intake_lines_total",
    "Lines and producer items the HTTP intake put on the source topic (every endpoint).",
)
ES_DOCUMENTS = Counter(
    "flywheel_ingest_es_documents_total",
    "Documents sent to the Elasticsearch-compatible endpoints (_bulk, _doc, _create), by the "
    "answer given: accepted, refused (ingest will reject it), unsupported (delete, update).",
    ["outcome"],
)
RELAY_ITEMS = Counter(
    "flywheel_ingest_relay_items_total",
    "What POST /v1/relay/events read: LLM calls with both events, LLM events without their other "
    "half (many: a sink that sends events apart), other events (context only), unreadable lines.",
    ["kind"],
)
OTLP_SPANS = Counter(
    "flywheel_ingest_otlp_spans_total",
    "Spans POST /v1/traces received, by what became of them: forwarded (LLM spans, as items; "
    "ingest may still reject them) or skipped (not a model call: workflow, agent, tool spans).",
    ["outcome"],
)

# Every label exposed from the start, at 0, so a rate or an absence alert has a series to read.
for _outcome in ("indexed", "duplicate", "rejected"):
    RECORDS.labels(_outcome)
for _reason in RejectReason:
    REJECTED.labels(_reason.value)
for _kind in PiiKind:
    PII_REDACTED.labels(_kind.value)
for _es_outcome in ("accepted", "refused", "unsupported"):
    ES_DOCUMENTS.labels(_es_outcome)
for _relay_kind in ("call", "unpaired", "other", "unreadable"):
    RELAY_ITEMS.labels(_relay_kind)
for _otlp_outcome in ("forwarded", "skipped"):
    OTLP_SPANS.labels(_otlp_outcome)
