"""Helpers for the integration tests and the benchmark: indexing generated records the way
ingest stores them, the service's settings on private topics and a private database, and
reading the service's outcome events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer
from elasticsearch import AsyncElasticsearch, TransportError
from elasticsearch import ConnectionError as EsConnectionError
from pydantic import SecretStr

from flywheel_contracts.envelope import Envelope, decode, new_event
from flywheel_contracts.events import DatasetFailed, DatasetReady, RunRequested
from flywheel_contracts.run_config import RunOverrides
from flywheel_contracts.runtime import KafkaSettings, MongoSettings
from flywheel_contracts.runtime.nmp import NmpSettings
from flywheel_contracts.runtime.publisher import Publisher
from flywheel_datasets.config import DatasetsSettings, ElasticsearchSettings
from flywheel_ingest.config import ElasticsearchSettings as IngestElasticsearchSettings
from flywheel_ingest.documents import canonical_json, document_id, stored_body
from flywheel_ingest.indexer import index_template

# Ingest's mappings: ids and time searchable, the OpenAI request and response in _source only.
MAPPING: dict[str, Any] = index_template(IngestElasticsearchSettings())["template"]["mappings"]
_CREATED = 201
_CONFLICT = 409
_TOO_MANY_REQUESTS = 429
_BULK_RECORDS = 500  # ~4 MB requests: a 512 MB heap's circuit breaker allows no more


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def index_records(
    es_url: str, index: str, records: Iterable[dict[str, Any]], *, fingerprinted: bool = True
) -> int:
    """Bulk-create `records` (already in ingest's normalized shape) under content ids, stored
    as ingest stores them (`fingerprinted=False`: as it did before it stored tool
    fingerprints)."""
    es = AsyncElasticsearch(es_url, request_timeout=120)
    try:
        await _wait_for(es)
        if not await es.indices.exists(index=index):
            await es.indices.create(
                index=index,
                settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
                mappings=MAPPING,
            )
        count = 0
        lines: list[bytes] = []
        for record in records:
            logged = canonical_json(record)
            doc_id = document_id(logged)
            body = stored_body(record) if fingerprinted else logged
            lines += [b'{"create":{"_id":"%s"}}' % doc_id.encode(), body]
            count += 1
            if len(lines) >= 2 * _BULK_RECORDS:
                await _bulk(es, index, lines)
                lines = []
        if lines:
            await _bulk(es, index, lines)
        await es.indices.refresh(index=index)
        return count
    finally:
        await es.close()


async def _wait_for(es: AsyncElasticsearch, timeout_s: float = 120.0) -> None:
    """Other suites stop and restart the shared servers now and then: wait, with a deadline."""
    deadline = time.monotonic() + timeout_s
    while not await es.ping():
        assert time.monotonic() < deadline, "Elasticsearch did not come back"
        await asyncio.sleep(1.0)


async def _bulk(es: AsyncElasticsearch, index: str, lines: list[bytes]) -> None:
    """One bulk request, repeated while the server is away or its circuit breaker trips; a
    repeat may find records already created (409), which is what a retry means."""
    body = b"\n".join(lines) + b"\n"
    deadline = time.monotonic() + 180.0
    while True:
        try:
            response = await es.bulk(body=body, index=index, filter_path="items.*.status")
        except TransportError as exc:
            retryable = isinstance(exc, EsConnectionError) or exc.status_code == _TOO_MANY_REQUESTS
            if not retryable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)
            continue
        statuses = {status for item in response["items"] for status in _statuses(item)}
        assert statuses <= {_CREATED, _CONFLICT}, f"bulk indexing refused records: {statuses}"
        return


def _statuses(item: dict[str, Any]) -> list[int]:
    return [outcome["status"] for outcome in item.values()]


async def delete_index(es_url: str, index: str) -> None:
    es = AsyncElasticsearch(es_url)
    try:
        await es.indices.delete(index=index, ignore_unavailable=True)
    finally:
        await es.close()


def settings_for(
    *,
    kafka_bootstrap: str,
    mongo_url: str,
    elasticsearch_url: str,
    nmp_url: str,
    index: str,
    prefix: str,
    database: str,
    namespace: str,
) -> DatasetsSettings:
    return DatasetsSettings(
        http_port=0,
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix),
        mongo=MongoSettings(url=SecretStr(mongo_url), database=database),
        elasticsearch=ElasticsearchSettings(url=SecretStr(elasticsearch_url), index=index),
        nmp=NmpSettings(
            nemo_base_url=nmp_url,
            nim_base_url=nmp_url,
            datastore_base_url=nmp_url,
            namespace=namespace,
            retry_backoff_s=0.1,
        ),
        reconcile_interval_s=0.2,
    )


def run_requested(
    workload_id: str, client_id: str, run_id: uuid.UUID | None = None, **overrides: Any
) -> Envelope[RunRequested]:
    payload = RunRequested(
        workload_id=workload_id,
        client_id=client_id,
        overrides=RunOverrides.model_validate(overrides),
    )
    return new_event(payload, producer="cli", run_id=run_id or uuid.uuid4())


async def started_publisher(kafka: KafkaSettings) -> Publisher:
    publisher = Publisher(kafka, client_id=unique("datasets-test-"))
    publisher.start()
    return publisher


class Outcomes:
    """The service's dataset.ready / dataset.failed events, read from the start of the topics."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "group.id": unique("datasets-test-"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        self._consumer.subscribe(
            [kafka.topic(DatasetReady.EVENT_TYPE), kafka.topic(DatasetFailed.EVENT_TYPE)]
        )
        self.seen: list[Envelope[Any]] = []

    def close(self) -> None:
        self._consumer.close()

    async def of(self, run_id: uuid.UUID, timeout_s: float = 60.0) -> Envelope[Any]:
        """The first outcome of `run_id`; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.for_run(run_id)
            if found:
                return found[0]
            await asyncio.to_thread(self._poll, 0.5)
        raise AssertionError(f"no dataset outcome for run {run_id} within {timeout_s}s")

    async def drain(self, seconds: float) -> None:
        """Keep reading for `seconds` (to see that nothing more arrives)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.to_thread(self._poll, 0.5)

    def for_run(self, run_id: uuid.UUID) -> list[Envelope[Any]]:
        return [e for e in self.seen if e.run_id == run_id]

    def _poll(self, timeout_s: float) -> None:
        for message in self._consumer.consume(num_messages=100, timeout=timeout_s):
            value = message.value()
            if message.error() is None and value:
                self.seen.append(decode(value))
