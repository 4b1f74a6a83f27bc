"""The commands on the real local Kafka."""

import asyncio
import json
import threading
from uuid import UUID, uuid4

import pytest
from click.testing import CliRunner, Result

from flywheel_contracts.catalog import TOPICS
from flywheel_contracts.cli.errors import ExitCode
from flywheel_contracts.cli.kafka import KafkaBus
from flywheel_contracts.cli.main import cli
from flywheel_contracts.envelope import decode
from flywheel_contracts.events import RunCancelled
from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_contracts.runtime.topics import ensure_topics, new_topics

from .conftest import golden

# `tail` and `watch` follow forever when what they wait for never comes.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Clearly not real traffic, for whichever service later reads these requests.
_WORKLOAD = "cli-test.workload"


@pytest.fixture(scope="module")
def bootstrap(kafka_bootstrap: str) -> str:
    """The broker, with the catalog's topics (a stack that was already running may lack them)."""
    asyncio.run(ensure_topics(KafkaSettings(bootstrap_servers=kafka_bootstrap), new_topics(TOPICS)))
    return kafka_bootstrap


def flywheel(bootstrap: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--bootstrap", bootstrap, *args])


def start_run(bootstrap: str) -> UUID:
    result = flywheel(bootstrap, "run", "--workload", _WORKLOAD, "--client", "cli-test")
    assert result.exit_code == 0, result.output
    return UUID(result.stdout.strip())


def test_run_then_tail_returns_the_request(bootstrap: str) -> None:
    run_id = start_run(bootstrap)
    result = flywheel(
        bootstrap, "tail", "run.requested", "--run", str(run_id), "--from-beginning", "--max", "1"
    )
    assert result.exit_code == 0, result.output
    envelope = decode(result.stdout.strip().encode())
    assert envelope.run_id == run_id
    assert envelope.payload.workload_id == _WORKLOAD


def test_cancel_publishes_run_cancelled(bootstrap: str) -> None:
    run_id = start_run(bootstrap)
    cancelled = flywheel(bootstrap, "cancel", str(run_id), "--reason", "cli test")
    assert cancelled.exit_code == 0, cancelled.output
    result = flywheel(
        bootstrap, "tail", "run.cancelled", "--run", str(run_id), "--from-beginning", "--max", "1"
    )
    assert result.exit_code == 0, result.output
    payload = decode(result.stdout.strip().encode()).payload
    assert isinstance(payload, RunCancelled)
    assert payload.reason == "cli test"


def test_topics_lists_run_requested_with_its_partitions(bootstrap: str) -> None:
    start_run(bootstrap)
    result = flywheel(bootstrap, "topics", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    requested = rows["run.requested"]
    assert len(requested["end_offsets"]) == 3
    assert sum(requested["end_offsets"]) >= 1
    table = flywheel(bootstrap, "topics")
    assert any(line.split()[1:2] == ["run.requested"] for line in table.stdout.splitlines())


def test_watch_exits_0_once_the_run_completes(bootstrap: str) -> None:
    run_id = start_run(bootstrap)
    bus = KafkaBus(KafkaSettings(bootstrap_servers=bootstrap))
    # Published while watch is following, so it must notice a new event, not only history.
    publisher = threading.Timer(2.0, bus.publish, [golden("run.completed", run_id)])
    publisher.start()
    try:
        result = flywheel(bootstrap, "watch", str(run_id), "--timeout", "60")
    finally:
        publisher.join()
    assert result.exit_code == 0, result.output
    assert f"run {run_id} completed" in result.stdout
    report = flywheel(bootstrap, "report", str(run_id))
    assert report.exit_code == 0, report.output
    assert "Recommended: meta/llama-3.2-1b-instruct" in report.stdout


def test_watch_times_out_on_a_run_that_never_ends(bootstrap: str) -> None:
    run_id = start_run(bootstrap)
    result = flywheel(bootstrap, "watch", str(run_id), "--timeout", "2")
    assert result.exit_code == ExitCode.TIMEOUT
    assert "did not finish within 2s" in result.stderr


def test_report_of_an_unknown_run(bootstrap: str) -> None:
    result = flywheel(bootstrap, "report", str(uuid4()))
    assert result.exit_code == ExitCode.ERROR
    assert "no run" in result.stderr


def test_a_topic_prefix_namespaces_what_the_bus_publishes_and_reads(kafka_bootstrap: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"cli{uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(kafka, new_topics(TOPICS, prefix=kafka.topic_prefix)))
    bus = KafkaBus(kafka)
    envelope = golden("run.cancelled", uuid4())
    bus.publish(envelope)
    key = str(envelope.run_id).encode()
    batches = bus.read(("run.cancelled",), from_beginning=True, follow=False, key=key)
    records = [record for batch in batches for record in batch.records]
    assert [decode(r.value).event_id for r in records] == [envelope.event_id]
    assert {r.topic for r in records} == {kafka.topic("run.cancelled")}
