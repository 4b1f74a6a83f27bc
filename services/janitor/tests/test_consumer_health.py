"""Issue 20, acceptance 3, on a janitor process and the real stack (the kit's event
consumer): with the stall hook, an event waits in front of its handler as a hung handler would;
`/health/ready` fails its `consumer` check within `HEALTH__READY_AFTER_S`, then `/health/live`
answers 503 within `HEALTH__LIVE_AFTER_S`, and both recover once the handler is let go, which
then handles the event it held."""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from flywheel_contracts.envelope import Envelope, encode, new_event
from flywheel_contracts.events import RunCancelled
from flywheel_contracts.runtime.idempotency import COLLECTION
from flywheel_contracts.runtime.testing import ServiceProcess, observe_stall, wait_for_status
from flywheel_localstack.pytest_plugin import StackHandle

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

STATISTICS_S = 1.0
READY_AFTER_S = 5.0
LIVE_AFTER_S = 10.0
MARGIN_S = 2.0
"""Probe period, the held message's fetch and a loaded machine's scheduling."""


@dataclass(frozen=True)
class Janitor:
    process: ServiceProcess
    prefix: str
    bootstrap: str
    mongo: MongoClient[dict[str, Any]]
    database: str

    def publish(self) -> Envelope[RunCancelled]:
        """A `run.cancelled` of a run nobody knows, sent to the janitor."""
        event = new_event(RunCancelled(reason="stall test"), producer="client", run_id=uuid.uuid4())
        producer = Producer({"bootstrap.servers": self.bootstrap})
        producer.produce(
            f"{self.prefix}{RunCancelled.EVENT_TYPE}",
            value=encode(event),
            key=str(event.run_id).encode(),
        )
        assert producer.flush(30) == 0
        return event

    def handled(self, event: Envelope[RunCancelled], within_s: float) -> bool:
        """Whether the janitor marks `event` processed within `within_s`."""
        processed = self.mongo[self.database][COLLECTION]
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if processed.find_one({"consumer": "janitor", "event_id": str(event.event_id)}):
                return True
            time.sleep(0.2)
        return False


@pytest.fixture
def janitor(stack: StackHandle, tmp_path: Path) -> Iterator[Janitor]:
    tag = uuid.uuid4().hex[:8]
    prefix, database = f"tstall{tag}.", f"janitor_stall_{tag}"
    env = {
        "FLYWHEEL_JANITOR_INSTANCE_ID": f"janitor-{tag}",
        "FLYWHEEL_JANITOR_GROUP_ID": f"flywheel.janitor.{prefix}",
        "FLYWHEEL_JANITOR_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "FLYWHEEL_JANITOR_KAFKA__TOPIC_PREFIX": prefix,
        "FLYWHEEL_JANITOR_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "FLYWHEEL_JANITOR_MONGO__URL": stack.mongo_url,
        "FLYWHEEL_JANITOR_MONGO__DATABASE": database,
        "FLYWHEEL_JANITOR_NMP__NEMO_BASE_URL": stack.nmp_url,
        "FLYWHEEL_JANITOR_NMP__NIM_BASE_URL": stack.nmp_url,
        "FLYWHEEL_JANITOR_NMP__DATASTORE_BASE_URL": stack.nmp_url,
        "FLYWHEEL_JANITOR_SWEEPS__ORPHANS_ENABLED": "false",
        "FLYWHEEL_JANITOR_SHUTDOWN_TIMEOUT_S": "5",
        "FLYWHEEL_JANITOR_HEALTH__STATISTICS_INTERVAL_MS": str(int(STATISTICS_S * 1000)),
        "FLYWHEEL_JANITOR_HEALTH__READY_AFTER_S": str(READY_AFTER_S),
        "FLYWHEEL_JANITOR_HEALTH__LIVE_AFTER_S": str(LIVE_AFTER_S),
        # Joining a group of 17 new topics is not what this test measures.
        "FLYWHEEL_JANITOR_HEALTH__SETTLE_GRACE_S": "60",
        "FLYWHEEL_JANITOR_TESTING__STALL_HOOK": "true",
    }
    process = ServiceProcess("flywheel_janitor", "FLYWHEEL_JANITOR_", env, tmp_path / "janitor.log")
    mongo: MongoClient[dict[str, Any]] = MongoClient(stack.mongo_url)
    process.start()
    try:
        yield Janitor(process, prefix, stack.kafka_bootstrap, mongo, database)
    finally:
        process.stop()
        mongo.drop_database(database)
        mongo.close()
        admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if names:
            for future in admin.delete_topics(names, operation_timeout=10).values():
                future.result(timeout=15)


def test_a_stalled_handler_makes_the_janitor_unready_then_dead_and_it_recovers_on_resume(
    janitor: Janitor,
) -> None:
    url = janitor.process.url
    assert janitor.handled(janitor.publish(), within_s=60), "the janitor does not consume"
    # Still ready past the readiness interval: the consumer has been reporting, so it polls.
    time.sleep(READY_AFTER_S + STATISTICS_S)
    wait_for_status(f"{url}/health/ready", 200, 30)

    assert httpx.post(f"{url}/testing/stall", timeout=5).json() == {"stalled": True}
    held = janitor.publish()
    seen = observe_stall(url, stalled_at=time.monotonic())

    seen.assert_within(
        "janitor",
        ready_after_s=READY_AFTER_S,
        live_after_s=LIVE_AFTER_S,
        statistics_s=STATISTICS_S,
        margin_s=MARGIN_S,
    )
    assert not janitor.handled(held, within_s=0.5), "the held event was handled while stalled"

    assert httpx.post(f"{url}/testing/resume", timeout=5).json() == {"stalled": False}

    alive = wait_for_status(f"{url}/health/live", 200, STATISTICS_S + MARGIN_S + 3)
    ready = wait_for_status(f"{url}/health/ready", 200, STATISTICS_S + MARGIN_S + 3)
    assert alive.json()["status"] == "alive"
    assert ready.json()["checks"]["consumer"]["ok"] is True
    assert janitor.handled(held, within_s=30)
