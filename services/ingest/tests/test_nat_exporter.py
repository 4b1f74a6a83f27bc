"""On the real stack: Elasticsearch clients and NeMo Agent Toolkit's Data Flywheel exporter,
pointed at ingest as their Elasticsearch, deliver every record: each one becomes a document or
an explained rejection.

Both run as they are, in the producers' venv (`flywheel_localstack.producers`): the official
`elasticsearch` 8 client, and NAT's exporter driven by a real NAT workflow
(`tools/producers/nat_dfw.py --url`). Ingest reads its own source topic, so nothing else on the
shared stack mixes in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.traffic import generate_lines
from flywheel_ingest.testing import PrivateIngest, PrivateIngestOf, unique
from flywheel_localstack.producers import run_driver

pytestmark = pytest.mark.integration

TOKEN = "nat-s3cret"
WORKFLOW_WORKLOAD = "nat-support-agent"


@pytest.fixture(scope="module")
def nat_ingest(
    private_ingest_of: PrivateIngestOf, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateIngest]:
    with private_ingest_of(
        "ingest-nat",
        tmp_path_factory.mktemp("nat"),
        intake__token=TOKEN,
        producers__nat__workflow_workload_id=WORKFLOW_WORKLOAD,
    ) as ingest:
        yield ingest


def test_the_elasticsearch_client_writes_to_ingest_and_reads_per_item_results(
    nat_ingest: PrivateIngest,
) -> None:
    client = unique("es-client")
    first, second = (json.loads(line) for line in generate_lines(2, seed=21))
    first["client_id"] = second["client_id"] = client
    incomplete = {key: value for key, value in first.items() if key != "response"}
    operations = [
        {"index": {"_index": "flywheel"}},
        first,
        {"create": {"_index": "flywheel", "_id": "chosen-by-client"}},
        incomplete,
        {"delete": {"_index": "flywheel", "_id": "anything"}},
    ]

    since = nat_ingest.rejected_offsets()
    # The client refuses a server without the product header, so no exception is the check.
    answer = run_driver(
        "es_client.py", nat_ingest.url, TOKEN, json.dumps(operations), json.dumps(second)
    )

    assert answer["info"]["version"]["number"].startswith("8.")
    bulk = answer["bulk"]
    assert bulk["errors"] is True
    statuses = [(verb, item["status"]) for entry in bulk["items"] for verb, item in entry.items()]
    assert statuses == [("index", 201), ("create", 400), ("delete", 400)]
    assert bulk["items"][1]["create"]["error"] == {
        "type": "flywheel_rejection",
        "reason": "missing_field: missing required field(s): response",
    }
    assert answer["index"]["result"] == "created"

    documents, rejected = nat_ingest.outcomes(client, calls=3, since=since)
    assert (documents, [r.reason for r in rejected]) == (2, [RejectReason.MISSING_FIELD])
    es = nat_ingest.elasticsearch_url
    for announced in (bulk["items"][0]["index"]["_id"], answer["index"]["_id"]):
        stored = httpx.get(f"{es}/{nat_ingest.tag}/_doc/{announced}", timeout=30).json()
        assert stored["found"] is True
        assert stored["_source"]["client_id"] == client


def test_nats_exporter_delivers_every_record_it_exports(nat_ingest: PrivateIngest) -> None:
    client = unique("nat-app")
    since = nat_ingest.rejected_offsets()

    exported = run_driver(
        "nat_dfw.py", "--url", nat_ingest.url, "--token", TOKEN, "--client-id", client
    )

    assert exported["exported"] == exported["llm_calls"] == 11  # NAT exported every LLM call
    statuses = Counter(item["index"]["status"] for item in exported["items"])
    accepted = statuses[201]
    refused = statuses[400]
    assert accepted + refused == exported["exported"]
    documents, rejected = nat_ingest.outcomes(client, calls=exported["exported"], since=since)
    assert documents + len(rejected) == exported["exported"]
    # NAT 1.9 loses the tool calls of tool-calling answers (see test_producers_nat): they
    # arrive as `finish_reason: tool_calls` without calls, and are rejected as such.
    assert (accepted, Counter(r.reason for r in rejected)) == (
        6,
        {RejectReason.TOOL_CALLS_MISSING: 5},
    )
    stored = nat_ingest.sources(client, expected=accepted)
    workloads = Counter(record["workload_id"] for record in stored)
    assert workloads == {WORKFLOW_WORKLOAD: 5, "summarize_text": 1}
    assert all(record["metadata"]["producer"] == "nat-data-flywheel" for record in stored)
