"""Helpers for tests and benchmarks that run ingest as a real process against real servers
(ingest's own suites, and end-to-end suites that need a running ingest)."""

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from fastapi import APIRouter, FastAPI

from flywheel_contracts.envelope import decode
from flywheel_contracts.events.records import RecordsIngested, RejectedRecord
from flywheel_contracts.runtime.testing import ServiceProcess
from flywheel_ingest.auth import IntakeGate
from flywheel_ingest.clients.outbox import HEADER_BY, REJECTED_TOPIC
from flywheel_ingest.clients.raw_topic import RawTopicUnavailable
from flywheel_ingest.config import ElasticsearchSettings, IntakeSettings
from flywheel_ingest.intake import LogIntake
from flywheel_ingest.producers import Format

T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class IngestProcess(ServiceProcess):
    """`python -m flywheel_ingest` with `FLYWHEEL_INGEST_*` settings, its output in `log_path`."""

    def __init__(self, settings: Mapping[str, str], log_path: Path) -> None:
        super().__init__("flywheel_ingest", "FLYWHEEL_INGEST_", settings, log_path)

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    @property
    def pid(self) -> int:
        """The running process's id (to read its /proc entries)."""
        assert self._process is not None, "not started"
        return self._process.pid

    def rss_bytes(self) -> int:
        """Its resident memory now (`VmRSS`, Linux only)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
        raise AssertionError(f"no VmRSS in /proc/{self.pid}/status")


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


@dataclass
class PrivateIngest:
    """An ingest process with a source topic, an index and a consumer group of its own (all
    named `tag`): what a test sends it, and nothing else on a shared stack, ends in its index
    or under its group in `logs.rejected`."""

    kafka_bootstrap: str
    elasticsearch_url: str
    tag: str
    process: IngestProcess

    @property
    def url(self) -> str:
        return self.process.url

    def documents(self, client_id: str) -> int:
        return count_documents(self.elasticsearch_url, self.tag, client_id=client_id)

    def sources(self, client_id: str, *, expected: int, timeout_s: float = 90) -> list[Any]:
        """The stored records of `client_id`, once `expected` of them are searchable."""
        deadline = time.monotonic() + timeout_s
        while (found := self.documents(client_id)) < expected:
            assert time.monotonic() < deadline, f"{client_id}: {found} of {expected} stored"
            time.sleep(0.5)
        hits = httpx.post(
            f"{self.elasticsearch_url}/{self.tag}/_search",
            json={"size": max(expected, 10) * 2, "query": {"term": {"client_id": client_id}}},
            timeout=30,
        ).json()["hits"]["hits"]
        return [hit["_source"] for hit in hits]

    def rejected_offsets(self) -> dict[int, int]:
        """Where `logs.rejected` ends now: pass it as `since` before sending."""
        return end_offsets(self.kafka_bootstrap, REJECTED_TOPIC)

    def rejected(
        self, *, since: Mapping[int, int], expected: int, timeout_s: float = 60
    ) -> list[RejectedRecord]:
        """This ingest's rejections since `since` (read until `expected`, plus a linger)."""
        return read_rejected(
            self.kafka_bootstrap,
            group=self.tag,
            start=since,
            expected=expected,
            timeout_s=timeout_s,
        )

    def outcomes(
        self, client_id: str, *, calls: int, since: Mapping[int, int], timeout_s: float = 90
    ) -> tuple[int, list[RejectedRecord]]:
        """Documents stored and rejections made for `client_id` (a rejection names the client in
        its raw text), once together they account for `calls`; rejections are read a little
        past that, to catch any extra one."""
        deadline = time.monotonic() + timeout_s
        while True:
            documents = self.documents(client_id)
            found = self.rejected(since=since, expected=max(calls - documents, 0), timeout_s=5)
            rejected = [r for r in found if json.dumps(client_id) in r.raw]
            if documents + len(rejected) >= calls:
                return self.documents(client_id), rejected
            assert time.monotonic() < deadline, (
                f"{client_id}: {documents} documents and {len(rejected)} rejections for {calls}"
            )


PrivateIngestOf = Callable[..., AbstractContextManager[PrivateIngest]]
"""`(prefix, log_dir, **settings)`: a `private_ingest` (the suites' fixture of that name)."""


@contextmanager
def private_ingest(
    kafka_bootstrap: str,
    elasticsearch_url: str,
    tag: str,
    settings: Mapping[str, str],
    log_path: Path,
) -> Iterator[PrivateIngest]:
    """Create the topic `tag`, run ingest on it with `settings` (which must name `tag` as its
    source topic, index and group), then stop it and remove the topic and the index."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(tag, num_partitions=1)])[tag].result(timeout=30)
    process = IngestProcess(settings, log_path)
    process.start()
    try:
        yield PrivateIngest(kafka_bootstrap, elasticsearch_url, tag, process)
    finally:
        process.stop()
        delete_index(elasticsearch_url, tag)
        admin.delete_topics([tag])[tag].result(timeout=30)


class FakeRawTopic:
    """The source topic in memory, for the HTTP intake's unit tests: what each `put` sent, as
    (lines, key, format); `down` makes it answer like an unreachable Kafka."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[bytes], bytes | None, Format]] = []
        self.tokens: list[str | None] = []
        """Per `put`, the scoped token named in the lines' header (None: no header)."""
        self.down = False

    async def put(
        self,
        lines: Sequence[bytes],
        key: bytes | None,
        fmt: Format = Format.RECORD,
        *,
        token: str | None = None,
    ) -> None:
        if self.down:
            raise RawTopicUnavailable(
                f"{len(lines)} of {len(lines)} lines not acknowledged: timed out"
            )
        self.sent.append((list(lines), key, fmt))
        self.tokens.append(token)


def intake_client(
    router: Callable[..., APIRouter],
    topic: FakeRawTopic,
    *,
    max_record_bytes: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    **settings: Any,
) -> httpx.AsyncClient:
    """An HTTP client of an app serving only `router(intake, gate=...)` over `topic`, with
    `IntakeSettings` of `settings` (small limits unless given), its rate limits on `clock`."""
    intake_settings = IntakeSettings.model_validate(
        {"max_body_bytes": 200_000, "max_line_bytes": 60_000, **settings}
    )
    intake = LogIntake(topic, intake_settings, max_record_bytes=max_record_bytes)
    app = FastAPI()
    app.include_router(router(intake, gate=IntakeGate(intake_settings, clock)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest")
