"""Scoped intake tokens end to end: through a real ingest, Kafka and Elasticsearch, a scoped
token's records of its own clients are stored and the others end on `logs.rejected` as
`client_not_allowed`, without the secret appearing anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import orjson
import pytest

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.traffic import TrafficConfig, generate_lines
from flywheel_ingest.testing import PrivateIngest, PrivateIngestOf, unique

pytestmark = pytest.mark.integration

SECRET = "acme-intake-s3cret-e2e"


@pytest.fixture(scope="module")
def ingest(
    private_ingest_of: PrivateIngestOf, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateIngest]:
    with private_ingest_of(
        "ingest-scope",
        tmp_path_factory.mktemp("scope"),
        intake__tokens__acme__token=SECRET,
        intake__tokens__acme__clients='["acme-e2e"]',
    ) as ingest:
        yield ingest


def test_a_scoped_tokens_other_clients_are_rejected_and_its_own_stored(
    ingest: PrivateIngest,
) -> None:
    own, other = "acme-e2e", unique("globex")
    lines = generate_lines(4, 21, TrafficConfig(workloads=("order-tools",)))
    records = [
        orjson.dumps({**json.loads(line), "client_id": client})
        for line, client in zip(lines, [own, own, other, other], strict=True)
    ]
    since = ingest.rejected_offsets()
    response = httpx.post(
        f"{ingest.url}/v1/logs",
        content=b"\n".join(records),
        headers={"authorization": f"Bearer {SECRET}"},
        timeout=30,
    )
    assert response.status_code == 202
    assert response.json()["accepted"] == 4
    stored, rejected = ingest.outcomes(other, calls=2, since=since)
    assert stored == 0
    assert [r.reason for r in rejected] == [RejectReason.CLIENT_NOT_ALLOWED] * 2
    assert len(ingest.sources(own, expected=2)) == 2
    assert not any(SECRET in r.model_dump_json() for r in rejected)
    assert SECRET not in ingest.process.log_path.read_text()
    assert SECRET not in ingest.process.metrics()


def test_without_a_token_nothing_is_taken(ingest: PrivateIngest) -> None:
    response = httpx.post(f"{ingest.url}/v1/logs", content=b"{}", timeout=10)
    assert response.status_code == 401
