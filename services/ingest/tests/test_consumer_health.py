"""Issue 20, acceptance 3, on an ingest process and the real stack (ingest's own consumer, not
the kit's subscriber): with the stall hook, the pipeline's polls wait; `/health/ready` fails its
`consumer` check within `HEALTH__READY_AFTER_S`, then `/health/live` answers 503 within
`HEALTH__LIVE_AFTER_S`; after resume both recover and the lines sent meanwhile are stored."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from flywheel_contracts.runtime.testing import observe_stall, wait_for_status
from flywheel_contracts.traffic import generate_lines
from flywheel_ingest.testing import PrivateIngest, PrivateIngestOf, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

STATISTICS_S = 1.0
READY_AFTER_S = 5.0
LIVE_AFTER_S = 10.0
MARGIN_S = 2.0
"""Probe period, the poll in progress when the gate closed and a loaded machine's scheduling."""
LINES = 5


@pytest.fixture
def stallable_ingest(private_ingest_of: PrivateIngestOf, tmp_path: Path) -> Iterator[PrivateIngest]:
    with private_ingest_of(
        "ingest-stall",
        tmp_path,
        health__statistics_interval_ms=str(int(STATISTICS_S * 1000)),
        health__ready_after_s=str(READY_AFTER_S),
        health__live_after_s=str(LIVE_AFTER_S),
        testing__stall_hook="true",
    ) as ingest:
        yield ingest


def _send(ingest: PrivateIngest, client: str) -> None:
    producer = Producer({"bootstrap.servers": ingest.kafka_bootstrap})
    for line in generate_lines(LINES, seed=20):
        record = json.loads(line)
        record["client_id"] = client
        producer.produce(ingest.tag, value=json.dumps(record).encode())
    assert producer.flush(30) == 0


def test_a_stalled_pipeline_makes_ingest_unready_then_dead_and_it_recovers_on_resume(
    stallable_ingest: PrivateIngest,
) -> None:
    url = stallable_ingest.url
    # Ready past the first interval: the consumer has been reporting, so it polls.
    time.sleep(READY_AFTER_S + STATISTICS_S)
    wait_for_status(f"{url}/health/ready", 200, 30)

    assert httpx.post(f"{url}/testing/stall", timeout=5).json() == {"stalled": True}
    stalled_at = time.monotonic()
    client = unique("held")
    _send(stallable_ingest, client)
    seen = observe_stall(url, stalled_at)

    seen.assert_within(
        "ingest",
        ready_after_s=READY_AFTER_S,
        live_after_s=LIVE_AFTER_S,
        statistics_s=STATISTICS_S,
        margin_s=MARGIN_S,
    )

    # Sent over ten seconds ago: a working pipeline would have stored them.
    assert stallable_ingest.documents(client) == 0
    assert httpx.post(f"{url}/testing/resume", timeout=5).json() == {"stalled": False}

    wait_for_status(f"{url}/health/live", 200, STATISTICS_S + MARGIN_S + 3)
    ready = wait_for_status(f"{url}/health/ready", 200, STATISTICS_S + MARGIN_S + 3)
    assert ready.json()["checks"]["consumer"]["ok"] is True
    assert len(stallable_ingest.sources(client, expected=LINES, timeout_s=60)) == LINES
