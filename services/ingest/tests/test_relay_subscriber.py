"""Acceptance on the real stack: a small agent under the real NeMo Relay (in the producers'
venv) feeds a real ingest process with a token, through the flywheel-relay subscriber
(`/v1/logs`), Relay's JSONL export posted to `/v1/relay/events`, and Relay's own ndjson stream
sink. Every LLM call Relay emitted ends as a document or an explained rejection; the records of
one agent run share its run id and number their steps from 0."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from flywheel_ingest.config import ProducerSettings
from flywheel_ingest.producers import Format
from flywheel_ingest.producers.relay import items_of
from flywheel_ingest.producers.translate import verdict
from flywheel_ingest.testing import PrivateIngest, PrivateIngestOf, unique
from flywheel_ingest.validation import LogRecord, Refusal, validate
from flywheel_localstack.producers import run_driver
from flywheel_relay import Call, RecordError, to_record

pytestmark = pytest.mark.integration

TOKEN = "relay-t0ken"
LIMIT = 262_144


@pytest.fixture(scope="module")
def relay_ingest(
    private_ingest_of: PrivateIngestOf, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateIngest]:
    with private_ingest_of(
        "ingest-relay",
        tmp_path_factory.mktemp("relay"),
        intake__token=TOKEN,
        max_line_bytes=str(LIMIT),
    ) as ingest:
        yield ingest


def _run_agent(ingest: PrivateIngest, export_dir: Path, *args: str) -> dict[str, Any]:
    return run_driver(
        "relay_agent.py",
        "--url",
        ingest.url,
        "--token",
        TOKEN,
        "--export-dir",
        str(export_dir),
        *args,
        timeout_s=180,
    )


@dataclass
class Expected:
    """What ingest must make of one route's calls, worked out here with the same code."""

    records: list[dict[str, Any]]  # the documents' sources, before storage
    refused: Counter[str]
    skipped: int = 0  # calls the subscriber could not make a record of (not shipped)


def _expected_items(export: Path) -> Expected:
    verdicts = [
        verdict(item, Format.RELAY_CALL, ProducerSettings(), LIMIT)
        for item in items_of(export.read_bytes()).items
    ]
    return _split(verdicts)


def _expected_subscriber(export: Path, client_id: str) -> Expected:
    verdicts: list[LogRecord | Refusal] = []
    skipped = 0
    for item in items_of(export.read_bytes()).items:
        try:
            record = to_record(Call.from_item(orjson.loads(item)), client_id=client_id)
        except RecordError:
            skipped += 1
            continue
        verdicts.append(validate(orjson.dumps(record), LIMIT))
    expected = _split(verdicts)
    expected.skipped = skipped
    return expected


def _split(verdicts: list[LogRecord | Refusal]) -> Expected:
    return Expected(
        [v.fields for v in verdicts if isinstance(v, LogRecord)],
        Counter(v.reason.value for v in verdicts if isinstance(v, Refusal)),
    )


def _runs(records: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    return {(r["workload_id"], r["metadata"]["agent_run"], r["metadata"]["step"]) for r in records}


def test_every_call_reaches_flywheel_through_the_subscriber_and_the_jsonl_export(
    relay_ingest: PrivateIngest, tmp_path: Path
) -> None:
    client = unique("relay-client")
    rejected_start = relay_ingest.rejected_offsets()

    result = _run_agent(relay_ingest, tmp_path, "--client-id", client)

    export = Path(result["export"])
    calls = result["relay"]["llm_calls"]
    assert calls == result["relay"]["llm_ends"] == 9  # what Relay emitted
    by_events = _expected_items(export)
    by_subscriber = _expected_subscriber(export, f"{client}.subscriber")
    # The JSONL route: one answer per call, the same verdicts ingest will reach.
    answer = result["events_route"]["answer"]
    assert result["events_route"]["status"] == 202
    assert (answer["calls"], answer["accepted"]) == (calls, len(by_events.records))
    assert Counter(r["reason"] for r in answer["rejected"]) == by_events.refused
    # The subscriber: every call paired; the ones without a record skipped with their reason.
    stats = result["subscriber"]
    assert stats["calls"] == calls
    assert stats["records"] + sum(stats["skipped"].values()) == calls
    assert stats["skipped"] == {"incomplete_call": by_subscriber.skipped}
    assert (stats["shipped"], stats["failed"], stats["dropped"]) == (stats["records"], 0, 0)

    events_docs = relay_ingest.sources(client, expected=len(by_events.records))
    subscriber_docs = relay_ingest.sources(
        f"{client}.subscriber", expected=len(by_subscriber.records)
    )
    rejected = relay_ingest.rejected(
        since=rejected_start,
        expected=sum(by_events.refused.values()) + sum(by_subscriber.refused.values()),
    )

    # Counts equal: every call is a document or an explained rejection (or a counted skip).
    items = [r for r in rejected if r.raw.startswith('{"start"')]
    records = [r for r in rejected if r.raw.startswith('{"workload_id"')]
    assert len(items) + len(records) == len(rejected)
    assert Counter(r.reason.value for r in items) == by_events.refused
    assert Counter(r.reason.value for r in records) == by_subscriber.refused
    assert all(r.message for r in rejected)
    assert len(events_docs) + len(items) == calls
    assert len(subscriber_docs) + len(records) + by_subscriber.skipped == calls
    # Both routes store the same calls, under the same agent runs and steps.
    assert _runs(events_docs) == _runs(by_events.records) == _runs(subscriber_docs)
    assert {d["metadata"]["producer"] for d in events_docs + subscriber_docs} == {"nemo-relay"}
    # Every run's calls (stored or not) are its steps 0..n-1, under the run's id.
    steps: dict[str, list[int]] = {}
    for item in items_of(export.read_bytes()).items:
        context = orjson.loads(item)["context"]
        steps.setdefault(context["agent_run"], []).append(context["step"])
    assert len(steps) == result["relay"]["agent_runs"] == 4
    assert all(sorted(run) == list(range(len(run))) for run in steps.values())
    stored = Counter(d["metadata"]["agent_run"] for d in events_docs)
    assert set(stored) <= set(steps)
    assert sorted(stored.values()) == [2, 2, 2]  # Lisbon's run had only refused calls


def test_relays_own_ndjson_stream_sink_delivers_every_call(
    relay_ingest: PrivateIngest, tmp_path: Path
) -> None:
    client = unique("relay-stream")
    rejected_start = relay_ingest.rejected_offsets()

    result = _run_agent(
        relay_ingest,
        tmp_path,
        "--client-id",
        client,
        "--relay-stream",
        "--subscriber-client-id",
        f"{client}.subscriber",
    )

    assert "events_route" not in result
    by_stream = _expected_items(Path(result["export"]))
    by_subscriber = _expected_subscriber(Path(result["export"]), f"{client}.subscriber")
    docs = relay_ingest.sources(client, expected=len(by_stream.records))
    rejected = relay_ingest.rejected(
        since=rejected_start,
        expected=sum(by_stream.refused.values()) + sum(by_subscriber.refused.values()),
    )
    items = [r for r in rejected if r.raw.startswith('{"start"')]
    assert Counter(r.reason.value for r in items) == by_stream.refused
    assert len(docs) + len(items) == result["relay"]["llm_calls"] == 9
    assert _runs(docs) == _runs(by_stream.records)
