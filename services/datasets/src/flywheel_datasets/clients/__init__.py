"""Adapters to Elasticsearch (the logged records) and NMP (Data Store, Entity Store, embeddings)."""
