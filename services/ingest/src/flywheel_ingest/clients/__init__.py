"""Adapters from ingest's ports to Kafka (source topic, logs.rejected, records.ingested)."""
