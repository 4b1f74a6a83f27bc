"""Acceptance 4: random, truncated and mutated records never take ingest down, and each one ends
either indexed or rejected with a reason. Also the HTTP intake and /metrics end to end.

The unit part drives `validate` with hypothesis; the integration part feeds a real ingest process
through its own source topic (so nothing else on the shared stack mixes in) and accounts for
every message by offset.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from random import Random
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel_contracts.events.records import RecordsIngested, RejectReason
from flywheel_contracts.traffic import TrafficConfig, generate_lines, malformed_lines
from flywheel_ingest.clients.outbox import REJECTED_TOPIC
from flywheel_ingest.documents import (
    TOOLS_FINGERPRINT,
    canonical_json,
    document_id,
    tools_fingerprint,
)
from flywheel_ingest.testing import (
    IngestProcess,
    count_documents,
    delete_index,
    end_offsets,
    metric_value,
    read_ingested,
    read_rejected,
    unique,
)
from flywheel_ingest.validation import LogRecord, Refusal, validate
from flywheel_localstack.pytest_plugin import StackHandle

LIMIT = 262_144
FUZZ_LINES = 3_000
BASE = list(generate_lines(100, seed=31))

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


# -- unit: the validator on arbitrary input ---------------------------------------------------


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=600))
def test_arbitrary_bytes_are_refused_with_a_reason(raw: bytes) -> None:
    outcome = validate(raw, LIMIT)
    assert isinstance(outcome, Refusal)
    assert outcome.message


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(
    line=st.sampled_from(BASE),
    path=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=6),
    value=_json_values,
)
def test_a_record_with_any_value_anywhere_is_stored_or_refused(
    line: str, path: list[int], value: Any
) -> None:
    record = json.loads(line)
    _replace_at(record, path, value)
    outcome = validate(json.dumps(record).encode(), LIMIT)
    if isinstance(outcome, LogRecord):
        canonical_json(outcome.fields)  # storable
    else:
        assert outcome.reason in RejectReason


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(line=st.sampled_from(BASE), cut=st.integers(min_value=0))
def test_every_truncation_is_refused_as_invalid_json(line: str, cut: int) -> None:
    raw = line.encode()[: cut % len(line.encode())]
    outcome = validate(raw, LIMIT)
    assert isinstance(outcome, Refusal)
    assert outcome.reason is RejectReason.INVALID_JSON


def _replace_at(node: Any, path: list[int], value: Any) -> None:
    """Follow `path` (indexes into keys or items) as deep as it goes; replace what is there."""
    for step in path[:-1]:
        children = list(node.values()) if isinstance(node, dict) else node
        child = children[step % len(children)] if isinstance(children, list) and children else None
        if not isinstance(child, dict | list) or not child:
            break
        node = child
    if isinstance(node, dict) and node:
        node[list(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value


# -- integration: a real ingest process ------------------------------------------------------


def fuzz_lines(count: int, seed: int) -> list[bytes]:
    """Random bytes, truncations, byte flips, structural mutations and valid records; every
    JSON record carries a unique marker, so no two valid ones share a document."""
    rng = Random(seed)
    lines: list[bytes] = []
    for number in range(count):
        base = rng.choice(BASE).encode()
        kind = rng.randrange(6)
        if kind == 0:
            lines.append(rng.randbytes(rng.randrange(0, 400)))
        elif kind == 1:
            lines.append(base[: rng.randrange(len(base))])
        elif kind == 2:
            flipped = bytearray(base)
            for _ in range(rng.randint(1, 5)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            lines.append(bytes(flipped))
        else:
            record = json.loads(base)
            record["metadata"] = {"fuzz": number}
            for _ in range(rng.randint(0, 3) if kind > 3 else 0):
                _replace_at(record, [rng.randrange(50) for _ in range(5)], _odd_value(rng))
            lines.append(json.dumps(record, ensure_ascii=rng.random() < 0.5).encode())
    return lines


def _odd_value(rng: Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            0,
            -1,
            1e308,
            10**30,
            "",
            "é😀\u0000",
            "x" * rng.randrange(1, 3000),
            [],
            {},
            {"nested": [[[[{"deep": 1}]]]]},
            json.loads("[" * 100 + "]" * 100),
            "2025-01-06T09:00:00Z",
            "not a date",
        ]
    )


@dataclass
class FuzzIngest:
    stack: StackHandle
    topic: str
    index: str
    group: str
    process: IngestProcess
    rejected_start: dict[int, int]
    posted: int = 0  # lines sent through POST /v1/logs
    refused: int = 0  # lines the tests expect in logs.rejected

    def produce(self, lines: list[bytes]) -> list[int]:
        """Put `lines` on the topic; returns their offsets, in order."""
        producer = Producer({"bootstrap.servers": self.stack.kafka_bootstrap, "linger.ms": 5})
        offsets: dict[int, int] = {}

        def delivered(index: int) -> Callable[[Any, Any], None]:
            def report(error: Any, message: Any) -> None:
                assert error is None, error
                offsets[index] = message.offset()

            return report

        for index, line in enumerate(lines):
            producer.produce(self.topic, value=line, on_delivery=delivered(index))
            producer.poll(0)
        assert producer.flush(30) == 0
        return [offsets[index] for index in range(len(lines))]


@pytest.fixture(scope="module")
def fuzz_ingest(
    stack: StackHandle,
    ingest_settings: Callable[..., dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FuzzIngest]:
    tag = unique("ingest-fuzz")
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    admin.create_topics([NewTopic(tag, num_partitions=1)])[tag].result(timeout=30)
    process = IngestProcess(
        ingest_settings(index=tag, group=tag, source_topic=tag),
        tmp_path_factory.mktemp("fuzz") / "ingest.log",
    )
    rejected_start = end_offsets(stack.kafka_bootstrap, REJECTED_TOPIC)
    process.start()
    try:
        yield FuzzIngest(stack, tag, tag, tag, process, rejected_start)
    finally:
        process.stop()
        delete_index(stack.elasticsearch_url, tag)
        admin.delete_topics([tag])[tag].result(timeout=30)


@pytest.mark.integration
def test_fuzzed_lines_are_each_indexed_or_rejected_and_ingest_stays_up(
    fuzz_ingest: FuzzIngest,
) -> None:
    lines = fuzz_lines(FUZZ_LINES, seed=77)
    offsets = fuzz_ingest.produce(lines)
    outcomes = [validate(line, LIMIT) for line in lines]
    expected_ids = {
        document_id(canonical_json(outcome.fields))
        for outcome in outcomes
        if isinstance(outcome, LogRecord)
    }
    refused = {
        offset for offset, o in zip(offsets, outcomes, strict=True) if isinstance(o, Refusal)
    }
    assert len(expected_ids) > 300 and len(refused) > 1000  # the mix is a real mix
    fuzz_ingest.refused += len(refused)

    stack = fuzz_ingest.stack
    deadline = time.monotonic() + 120
    while count_documents(stack.elasticsearch_url, fuzz_ingest.index) < len(expected_ids):
        assert time.monotonic() < deadline, "not every valid line was indexed in time"
        time.sleep(0.5)
    rejected = read_rejected(
        stack.kafka_bootstrap,
        group=fuzz_ingest.group,
        start=fuzz_ingest.rejected_start,
        expected=len(refused),
        timeout_s=60,
    )

    assert fuzz_ingest.process.alive
    assert httpx.get(f"{fuzz_ingest.process.url}/health/live", timeout=5).status_code == 200
    rejected_offsets = Counter(
        r.source.offset for r in rejected if r.source.topic == fuzz_ingest.topic
    )
    assert set(rejected_offsets) == refused  # no valid line refused, no invalid one indexed
    assert max(rejected_offsets.values()) == 1  # each refused once
    assert count_documents(stack.elasticsearch_url, fuzz_ingest.index, refresh=True) == len(
        expected_ids
    )
    found = httpx.post(
        f"{stack.elasticsearch_url}/{fuzz_ingest.index}/_mget",
        json={"ids": sorted(expected_ids)},
        params={"_source": "false"},
        timeout=30,
    ).json()["docs"]
    assert all(doc["found"] for doc in found)
    log = fuzz_ingest.process.log_path.read_text(errors="replace")
    assert "loop.crashed" not in log
    assert "record.unprocessable" not in log


@pytest.mark.integration
def test_ndjson_posted_over_http_is_ingested_like_shipped_lines(fuzz_ingest: FuzzIngest) -> None:
    client = unique("http-client")
    valid = list(generate_lines(300, seed=5, config=TrafficConfig(client_ids=(client,))))
    broken = list(malformed_lines(30, seed=5))
    rejected_before = end_offsets(fuzz_ingest.stack.kafka_bootstrap, REJECTED_TOPIC)
    ingested_before = end_offsets(fuzz_ingest.stack.kafka_bootstrap, RecordsIngested.EVENT_TYPE)
    body = "\n".join([*valid, *(line for line, _ in broken)]).encode() + b"\n"

    response = httpx.post(
        f"{fuzz_ingest.process.url}/v1/logs",
        params={"source": client},
        content=body,
        headers={"content-type": "application/x-ndjson"},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 330, "blank": 0}
    fuzz_ingest.posted += 330
    fuzz_ingest.refused += 30

    stack = fuzz_ingest.stack
    deadline = time.monotonic() + 60
    while count_documents(stack.elasticsearch_url, fuzz_ingest.index, client_id=client) < 300:
        assert time.monotonic() < deadline, "posted records not indexed in time"
        time.sleep(0.5)
    rejected = read_rejected(
        stack.kafka_bootstrap,
        group=fuzz_ingest.group,
        start=rejected_before,
        expected=30,
        timeout_s=60,
    )
    assert Counter((r.raw[:200], r.reason) for r in rejected) == Counter(
        (line[:200], reason) for line, reason in broken
    )
    # Announced per batch, counted per workload and client.
    batches = read_ingested(
        stack.kafka_bootstrap, client_id=client, start=ingested_before, expected=1, timeout_s=30
    )
    announced: Counter[str] = Counter()
    for batch in batches:
        announced.update({c.workload_id: c.records for c in batch.counts if c.client_id == client})
    assert announced == Counter(json.loads(line)["workload_id"] for line in valid)

    # Stored as normalized, with its tools' fingerprint, under the id of its content.
    with_tools = next(line for line in valid if "tools" in json.loads(line)["request"])
    first = validate(with_tools.encode(), LIMIT)
    assert isinstance(first, LogRecord)
    canonical = canonical_json(first.fields)
    stored = httpx.get(
        f"{stack.elasticsearch_url}/{fuzz_ingest.index}/_doc/{document_id(canonical)}", timeout=30
    ).json()
    assert stored["_source"] == {
        **orjson.loads(canonical),
        TOOLS_FINGERPRINT: tools_fingerprint(first.fields),
    }


@pytest.mark.integration
def test_metrics_count_every_rejection_by_reason(fuzz_ingest: FuzzIngest) -> None:
    exposition = httpx.get(f"{fuzz_ingest.process.url}/metrics", timeout=5).text
    rejected = read_rejected(
        fuzz_ingest.stack.kafka_bootstrap,
        group=fuzz_ingest.group,
        start=fuzz_ingest.rejected_start,
        expected=fuzz_ingest.refused,
        timeout_s=60,
    )
    by_reason = Counter(r.reason for r in rejected)
    for reason in RejectReason:
        sample = f'flywheel_ingest_rejected_total{{reason="{reason.value}"}}'
        assert metric_value(exposition, sample) == by_reason[reason], reason
    assert metric_value(exposition, 'flywheel_ingest_records_total{outcome="rejected"}') == len(
        rejected
    )
    assert metric_value(exposition, "flywheel_ingest_intake_lines_total") == fuzz_ingest.posted
