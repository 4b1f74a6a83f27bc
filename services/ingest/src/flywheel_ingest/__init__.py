"""Flywheel ingest: raw LLM call logs from `logs.raw` to searchable records in Elasticsearch.

Every line the log shipper (or `POST /v1/logs`) puts on `logs.raw` ends as exactly one of:
- one document in the index (default `flywheel`), id = sha256 of the record's canonical JSON, so
  a redelivered line never makes a second one. Stored fields: `workload_id`, `client_id` (keyword),
  `timestamp` (date, millisecond ISO 8601 UTC), `request` and `response` (kept, not indexed,
  tool-call arguments always JSON objects), and whatever else the record carried (`metadata`, ...)
  kept as logged;
- one message on `logs.rejected` (`RejectedRecord`: reason code, human message, the raw line,
  its source position), headers `rejected.reason` and `rejected.by` (the consumer group).

Each batch is announced on `records.ingested` with counts per workload and client. Offsets are
committed only once the batch is in Elasticsearch and its rejections are acknowledged by Kafka;
while Elasticsearch is unreachable consumption pauses and the batch is retried with backoff.
Run with `python -m flywheel_ingest`; settings are `FLYWHEEL_INGEST_*` (see `config.py`).
"""
