"""The batch logic against fake ports: every line stored or rejected, every effect retried until
acknowledged, the batch announced, and the counters moved."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.pii import PiiKind
from flywheel_contracts.traffic import TrafficConfig, generate_lines, malformed_lines
from flywheel_ingest import service as service_module
from flywheel_ingest.config import PiiSettings, RetrySettings
from flywheel_ingest.documents import (
    TOOLS_FINGERPRINT,
    RawLine,
    canonical_json,
    document_id,
    tools_fingerprint,
)
from flywheel_ingest.pii import Redactor
from flywheel_ingest.producers import Format
from flywheel_ingest.service import IngestService

pytestmark = pytest.mark.unit

WORKLOADS = ("order-tools", "customer-service-chat")


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _traffic(records: int, seed: int = 1) -> list[str]:
    config = TrafficConfig(workloads=WORKLOADS, client_ids=("acme", "globex"))
    return list(generate_lines(records, seed, config))


async def test_every_line_is_stored_or_rejected_and_the_batch_announced(
    service: IngestService, store: Any, outbox: Any, lines_of: Any
) -> None:
    broken = list(malformed_lines(30, seed=5))
    lines = lines_of([*_traffic(70), *(line for line, _ in broken)], partition=3, start=100)
    rejected_before = _metric("flywheel_ingest_rejected_total", reason="oversize")

    batch = service.prepare(lines)
    delivered = await service.deliver(batch)

    assert (delivered.lines, delivered.created, delivered.duplicates, delivered.rejected) == (
        100,
        70,
        0,
        30,
    )
    assert len(store.documents) == 70
    assert [r.reason for r in outbox.rejected] == [reason for _, reason in broken]
    first = outbox.rejected[0]
    assert (first.source.topic, first.source.partition, first.source.offset) == ("logs.raw", 3, 170)
    assert first.rejected_at.isoformat() == "2025-03-01T12:00:00+00:00"
    (summary,) = outbox.announced
    assert (summary.indexed, summary.rejected) == (70, 30)
    expected = Counter(
        (json.loads(line)["workload_id"], json.loads(line)["client_id"]) for line in _traffic(70)
    )
    assert {(c.workload_id, c.client_id): c.records for c in summary.counts} == expected
    oversize = sum(1 for _, reason in broken if reason is RejectReason.OVERSIZE)
    assert _metric("flywheel_ingest_rejected_total", reason="oversize") == (
        rejected_before + oversize
    )


async def test_a_redelivered_batch_creates_no_second_document(
    service: IngestService, store: Any, outbox: Any, lines_of: Any
) -> None:
    lines = lines_of(_traffic(20))
    await service.deliver(service.prepare(lines))
    again = await service.deliver(service.prepare(lines_of(_traffic(20), start=500)))
    assert (again.created, again.duplicates) == (0, 20)
    assert len(store.documents) == 20
    assert outbox.announced[-1].indexed == 20  # still in the store: counted for its workload


async def test_store_outage_is_retried_with_growing_backoff(
    service: IngestService, store: Any, sleep: Any, lines_of: Any
) -> None:
    store.down_for = 5
    retries = _metric("flywheel_ingest_store_retries_total")
    delivered = await service.deliver(service.prepare(lines_of(_traffic(10))))
    assert delivered.created == 10
    assert sleep.delays == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert len(store.requests) == 6
    assert _metric("flywheel_ingest_store_retries_total") == retries + 5


async def test_only_the_documents_the_store_deferred_are_sent_again(
    service: IngestService, store: Any, lines_of: Any
) -> None:
    batch = service.prepare(lines_of(_traffic(10)))
    deferred = {batch.documents[2].id, batch.documents[7].id}
    store.defer_once = set(deferred)
    delivered = await service.deliver(batch)
    assert delivered.created == 10
    assert set(store.requests[1]) == deferred


async def test_a_document_the_store_refuses_is_rejected_with_its_error(
    service: IngestService, store: Any, outbox: Any, lines_of: Any
) -> None:
    batch = service.prepare(lines_of(_traffic(5)))
    store.refuse = {batch.documents[1].id}
    delivered = await service.deliver(batch)
    assert (delivered.created, delivered.rejected) == (4, 1)
    (refusal,) = outbox.rejected
    assert refusal.reason is RejectReason.NOT_OPENAI_FORMAT
    assert refusal.message == "Elasticsearch refused it: mapper_parsing_exception: boom"
    assert refusal.source.offset == 1
    assert outbox.announced[0].rejected == 1


async def test_rejections_kafka_did_not_acknowledge_are_published_again_only_them(
    service: IngestService, outbox: Any, lines_of: Any
) -> None:
    broken = [line for line, _ in malformed_lines(4, seed=2)]
    outbox.reject_failures = 2
    outbox.announce_failures = 2
    await service.deliver(service.prepare(lines_of(broken)))
    assert sorted(r.source.offset for r in outbox.rejected) == [0, 1, 2, 3]
    assert len(outbox.announced) == 1


async def test_redaction_changes_the_stored_body_but_not_the_id(
    store: Any, outbox: Any, sleep: Any, lines_of: Any
) -> None:
    def make(pii: PiiSettings) -> IngestService:
        return IngestService(
            store, outbox, Redactor(pii), max_line_bytes=1 << 20, retry=RetrySettings(), sleep=sleep
        )

    record = json.loads(_traffic(1)[0])
    record["request"]["messages"][-1]["content"] = "mail me at jo@example.com or +1 415-555-0123"
    lines = lines_of([json.dumps(record)])
    plain = make(PiiSettings()).prepare(lines)
    redacting = make(PiiSettings(workloads=frozenset({record["workload_id"]})))
    emails = _metric("flywheel_ingest_pii_redacted_total", kind="email")
    scrubbed = redacting.prepare(lines)
    await redacting.deliver(scrubbed)

    assert plain.documents[0].id == scrubbed.documents[0].id
    assert b"jo@example.com" in plain.documents[0].body
    body = orjson.loads(store.documents[scrubbed.documents[0].id])
    assert body["request"]["messages"][-1]["content"] == (
        "mail me at [REDACTED:email] or [REDACTED:phone]"
    )
    assert scrubbed.pii == Counter({PiiKind.EMAIL: 1, PiiKind.PHONE: 1})
    assert _metric("flywheel_ingest_pii_redacted_total", kind="email") == emails + 1


def test_stored_documents_carry_the_tools_fingerprint_and_keep_their_ids(
    service: IngestService, lines_of: Any
) -> None:
    logged = [json.loads(line) for line in _traffic(40)]
    batch = service.prepare(lines_of([json.dumps(record) for record in logged]))
    for record, document in zip(logged, batch.documents, strict=True):
        stored = orjson.loads(document.body)
        fingerprint = stored.pop(TOOLS_FINGERPRINT, None)
        assert (fingerprint is None) == ("tools" not in record["request"])
        assert fingerprint == tools_fingerprint(stored)
        assert document.id == document_id(canonical_json(stored))
    assert any(TOOLS_FINGERPRINT in orjson.loads(d.body) for d in batch.documents)
    assert not all(TOOLS_FINGERPRINT in orjson.loads(d.body) for d in batch.documents)


def test_a_line_that_breaks_validation_is_refused_not_dropped(
    service: IngestService, lines_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(service_module, "verdict", explode)
    batch = service.prepare(lines_of(_traffic(2)))
    assert batch.documents == []
    assert [r.message for r in batch.rejections] == [
        "ingest could not process the record (RuntimeError: bug)"
    ] * 2


def test_json_nested_deeper_than_can_be_stored_is_refused(
    service: IngestService, lines_of: Any
) -> None:
    record = json.loads(_traffic(1)[0])
    record["metadata"] = json.loads("[" * 300 + "]" * 300)
    (rejection,) = service.prepare(lines_of([json.dumps(record)])).rejections
    assert rejection.reason is RejectReason.INVALID_JSON
    assert rejection.message.startswith("cannot be stored as JSON")


def _items(texts: list[str], fmt: Format) -> list[RawLine]:
    return [RawLine(text.encode(), "logs.raw", 0, i, fmt) for i, text in enumerate(texts)]


def test_a_producers_call_exported_twice_with_other_details_is_refused_as_a_duplicate_call(
    service: IngestService,
) -> None:
    record = json.loads(_traffic(1)[0])
    record["response"]["id"] = "chatcmpl-42"
    again = {**record, "timestamp": "2026-01-06T09:00:01Z", "metadata": {"exporter": "second"}}
    other_answer = json.loads(json.dumps(record))
    other_answer["response"]["id"] = "chatcmpl-43"
    texts = [json.dumps(record), json.dumps(again), json.dumps(other_answer)]
    batch = service.prepare(_items(texts, Format.NAT))
    assert len(batch.documents) == 2
    (rejection,) = batch.rejections
    assert rejection.reason is RejectReason.DUPLICATE_CALL
    assert rejection.source.offset == 1
    assert "'chatcmpl-42'" in rejection.message
    # Log records are not checked: their outcome must not depend on how lines are batched.
    assert len(service.prepare(_items(texts, Format.RECORD)).documents) == 3


def test_an_exact_repeat_is_stored_once_not_refused(service: IngestService) -> None:
    record = json.loads(_traffic(1)[0])
    record["response"]["id"] = "chatcmpl-42"
    batch = service.prepare(_items([json.dumps(record)] * 2, Format.NAT))
    assert batch.rejections == []
    assert len({document.id for document in batch.documents}) == 1
