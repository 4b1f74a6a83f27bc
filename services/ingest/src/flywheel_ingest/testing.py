"""Helpers for tests and benchmarks that run ingest as a real process against real servers
(ingest's own suites, and end-to-end suites that need a running ingest)."""

import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from flywheel_contracts.envelope import decode
from flywheel_contracts.events.records import RecordsIngested, RejectedRecord
from flywheel_contracts.runtime.testing import ServiceProcess
from flywheel_ingest.clients.outbox import HEADER_BY, REJECTED_TOPIC
from flywheel_ingest.config import ElasticsearchSettings

T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class IngestProcess(ServiceProcess):
    """`python -m flywheel_ingest` with `FLYWHEEL_INGEST_*` settings, its output in `log_path`."""

    def __init__(self, settings: Mapping[str, str], log_path: Path) -> None:
        super().__init__("flywheel_ingest", "FLYWHEEL_INGEST_", settings, log_path)

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text


def end_offsets(bootstrap: str, topic: str, timeout_s: float = 60.0) -> dict[int, int]:
    """The next offset of every partition of `topic`, asking again while the broker is away
    (a shared stack's Kafka may be restarting)."""
    deadline = time.monotonic() + timeout_s
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("offsets")})
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in partitions
                }
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
    finally:
        consumer.close()


def pin_group(bootstrap: str, group: str, topic: str, offsets: Mapping[int, int]) -> None:
    """Commit `offsets` for a new `group`, so a consumer of that group starts there instead of
    reading the topic's whole history."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, offset) for p, offset in offsets.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()


def occurrences(
    bootstrap: str,
    topic: str,
    *,
    start: Mapping[int, int],
    key: bytes,
    wanted: set[bytes],
    timeout_s: float = 60.0,
) -> Counter[bytes]:
    """How often each of `wanted` was written under `key` since `start` (up to the current
    end): the shipper may repeat lines around a Kafka restart."""
    end = end_offsets(bootstrap, topic)
    deadline = time.monotonic() + timeout_s
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("reader"), "enable.auto.commit": False}
    )
    remaining = {p for p, offset in start.items() if offset < end[p]}
    consumer.assign([TopicPartition(topic, p, start[p]) for p in remaining])
    found: Counter[bytes] = Counter()
    try:
        while remaining:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic} not read to its end within {timeout_s}s")
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                if message.key() == key and message.value() in wanted:
                    found[message.value() or b""] += 1
                if offset >= end[partition] - 1:
                    remaining.discard(partition)
    finally:
        consumer.close()
    return found


def read_since(
    bootstrap: str,
    topic: str,
    *,
    start: Mapping[int, int],
    keep: Callable[[Message], T | None],
    expected: int,
    timeout_s: float,
) -> list[T]:
    """What `keep` makes of the messages of `topic` since `start` (None: skipped), until
    `expected` were kept (plus a short linger to catch any duplicate) or `timeout_s` passed."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("reader"), "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, offset) for p, offset in start.items()])
    found: list[T] = []
    deadline = time.monotonic() + timeout_s
    linger_until: float | None = None
    try:
        while time.monotonic() < (linger_until or deadline):
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None and (kept := keep(message)) is not None:
                    found.append(kept)
            if len(found) >= expected and linger_until is None:
                linger_until = time.monotonic() + 2.0
    finally:
        consumer.close()
    return found


def read_rejected(
    bootstrap: str, *, group: str, start: Mapping[int, int], expected: int, timeout_s: float
) -> list[RejectedRecord]:
    """Records `group` sent to logs.rejected since `start` (see `read_since`)."""

    def of_group(message: Message) -> RejectedRecord | None:
        if dict(message.headers() or []).get(HEADER_BY) != group.encode():
            return None
        return RejectedRecord.model_validate_json(message.value() or b"")

    return read_since(
        bootstrap,
        REJECTED_TOPIC,
        start=start,
        keep=of_group,
        expected=expected,
        timeout_s=timeout_s,
    )


def read_ingested(
    bootstrap: str, *, client_id: str, start: Mapping[int, int], expected: int, timeout_s: float
) -> list[RecordsIngested]:
    """records.ingested payloads since `start` that count records of `client_id`."""

    def of_client(message: Message) -> RecordsIngested | None:
        payload = decode(message.value() or b"").payload
        if not isinstance(payload, RecordsIngested):
            return None
        return payload if any(c.client_id == client_id for c in payload.counts) else None

    return read_since(
        bootstrap,
        RecordsIngested.EVENT_TYPE,
        start=start,
        keep=of_client,
        expected=expected,
        timeout_s=timeout_s,
    )


def count_documents(
    elasticsearch_url: str, index: str, *, client_id: str | None = None, refresh: bool = False
) -> int:
    """Documents of `index` (of one client when given); 0 while the index does not exist or
    its shard is not yet allocated."""
    if refresh:
        httpx.post(f"{elasticsearch_url}/{index}/_refresh", timeout=30)
    query = {"term": {"client_id": client_id}} if client_id else {"match_all": {}}
    response = httpx.post(f"{elasticsearch_url}/{index}/_count", json={"query": query}, timeout=30)
    if response.status_code in (404, 503):
        return 0
    response.raise_for_status()
    count: int = response.json()["count"]
    return count


def delete_index(elasticsearch_url: str, index: str, timeout_s: float = 60.0) -> None:
    """Remove `index` and the template ingest put for it, waiting out an Elasticsearch restart."""
    template = ElasticsearchSettings(index=index).template_name
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.delete(f"{elasticsearch_url}/{index}", timeout=30)
            httpx.delete(f"{elasticsearch_url}/_index_template/{template}", timeout=30)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def workload_counts(elasticsearch_url: str, index: str, *, client_id: str) -> dict[str, int]:
    """Documents of one client per workload."""
    response = httpx.post(
        f"{elasticsearch_url}/{index}/_search",
        json={
            "size": 0,
            "query": {"term": {"client_id": client_id}},
            "aggs": {"workloads": {"terms": {"field": "workload_id", "size": 100}}},
        },
        timeout=30,
    )
    response.raise_for_status()
    buckets = response.json()["aggregations"]["workloads"]["buckets"]
    return {bucket["key"]: bucket["doc_count"] for bucket in buckets}


def metric_value(exposition: str, sample: str) -> float:
    """The value of `sample` (name with labels, as exposed) in a /metrics text; 0 if absent."""
    for line in exposition.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0
