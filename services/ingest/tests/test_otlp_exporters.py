"""On the real stack: NeMo Agent Toolkit's OpenTelemetry exporter and NeMo Relay's `gen_ai`
exporter, pointed at ingest's `/v1/traces`, deliver every LLM span they export: each becomes a
document or an explained rejection, and their other spans (workflow, agent, tool) nothing.

Both run as they are, in the producers' venv (`flywheel_localstack.producers`), driven by
`tools/producers/nat_otel.py --url` (a real NAT workflow, exported gzip-compressed) and
`tools/producers/relay_otlp.py --url` (a small Relay agent). Ingest reads its own source topic,
so nothing else on the shared stack mixes in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.testing import PrivateIngest, PrivateIngestOf, metric_value, unique
from flywheel_localstack.producers import run_driver

pytestmark = pytest.mark.integration

TOKEN = "otlp-s3cret"
FIXTURES = Path(__file__).parent / "fixtures" / "producers" / "otlp"
FORWARDED = 'flywheel_ingest_otlp_spans_total{outcome="forwarded"}'
SKIPPED = 'flywheel_ingest_otlp_spans_total{outcome="skipped"}'


class OtlpIngest(PrivateIngest):
    @property
    def traces_url(self) -> str:
        return f"{self.url}/v1/traces"

    def spans(self) -> tuple[float, float]:
        exposition = self.process.metrics()
        return metric_value(exposition, FORWARDED), metric_value(exposition, SKIPPED)


@pytest.fixture(scope="module")
def otlp_ingest(
    private_ingest_of: PrivateIngestOf, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OtlpIngest]:
    with private_ingest_of(
        "ingest-otlp", tmp_path_factory.mktemp("otlp"), intake__token=TOKEN
    ) as ingest:
        yield OtlpIngest(**vars(ingest))


def test_nats_otel_exporter_delivers_every_llm_span_it_exports(otlp_ingest: OtlpIngest) -> None:
    client = unique("nat-otel")
    since = otlp_ingest.rejected_offsets()
    forwarded_before, skipped_before = otlp_ingest.spans()

    exported = run_driver(
        "nat_otel.py",
        "--url",
        otlp_ingest.traces_url,
        "--token",
        TOKEN,
        "--client-id",
        client,
        "--gzip",
    )

    assert exported["failed_llm_spans"] == 0
    assert exported["llm_spans"] == 8  # nine calls; NAT's own agent drops one (see the driver)
    documents, rejected = otlp_ingest.outcomes(client, calls=exported["llm_spans"], since=since)
    assert documents + len(rejected) == exported["llm_spans"]
    # The call whose tool arguments were not JSON reaches the exporter without its calls.
    assert Counter(r.reason for r in rejected) == {RejectReason.TOOL_CALLS_MISSING: 1}
    forwarded, skipped = otlp_ingest.spans()
    assert forwarded - forwarded_before == exported["llm_spans"]
    assert skipped - skipped_before == exported["spans"] - exported["llm_spans"]


def test_relays_gen_ai_exporter_delivers_every_llm_span_it_exports(
    otlp_ingest: OtlpIngest,
) -> None:
    client = unique("relay-otlp")
    since = otlp_ingest.rejected_offsets()
    forwarded_before, skipped_before = otlp_ingest.spans()

    exported = run_driver(
        "relay_otlp.py",
        "--url",
        otlp_ingest.traces_url,
        "--token",
        TOKEN,
        "--client-id",
        client,
        "--type",
        "gen_ai",
    )

    assert exported == {"llm_spans": 5, "failed": []}
    documents, rejected = otlp_ingest.outcomes(client, calls=5, since=since)
    assert documents + len(rejected) == 5
    (failed,) = rejected  # the call whose provider failed
    assert failed.reason is RejectReason.INCOMPLETE_CALL
    assert "ConnectionError: the model server went away" in failed.message
    stored = otlp_ingest.sources(client, expected=documents)
    assert {record["workload_id"] for record in stored} == {"relay-weather-agent"}
    assert {record["metadata"]["convention"] for record in stored} == {"gen_ai"}
    forwarded, skipped = otlp_ingest.spans()
    assert forwarded - forwarded_before == 5
    assert skipped - skipped_before == 3  # the tool and the two agents


def test_an_otlp_json_export_is_answered_and_ingested_like_protobuf(
    otlp_ingest: OtlpIngest,
) -> None:
    client = unique("relay-json")
    since = otlp_ingest.rejected_offsets()
    # Relay's own OTLP/JSON (its file sink), as an exporter would post it.
    line = (FIXTURES / "relay" / "relay-gen_ai.jsonl").read_bytes().splitlines()[0]
    body = line.replace(b'"relay-otlp-driver"', json.dumps(client).encode())

    unauthorized = httpx.post(
        otlp_ingest.traces_url, content=body, headers={"content-type": "application/json"}
    )
    answer = httpx.post(
        otlp_ingest.traces_url,
        content=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )

    assert unauthorized.status_code == 401
    assert answer.status_code == 200, answer.text
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"
    documents, rejected = otlp_ingest.outcomes(client, calls=5, since=since)
    assert (documents, [r.reason for r in rejected]) == (4, [RejectReason.INCOMPLETE_CALL])
