"""The whole flywheel for the end-to-end suite: the six services as real processes on the local
stack, a private NMP emulator (so counts of deployments and jobs are exact), generated traffic
shipped and indexed, and a tap on the flywheel's topics.

Traffic goes the real way: a *.jsonl file in the shipper's folder, which rsyslog ships into the
un-prefixed `logs.raw`. Ingest runs without the topic prefix (`FlywheelSetup.ingest_reads_shipper`:
no flywheel service consumes what it publishes) and reads that `logs.raw` with a consumer group
of its own that starts at the topic's end: it skips the history other suites shipped, and whatever
they ship meanwhile lands in this flywheel's private index under other client ids, which its runs
never ask for. Without a shipper folder (external stacks), the lines are produced directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from flywheel_contracts.traffic import CHAT, ROUTER, TrafficConfig, generate_to_file
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_localstack.services import Flywheel, FlywheelSetup, ship, wait_indexed
from flywheel_nim_manager.testing.process import EventTap
from tests.support.world import (
    PrivateFlywheel,
    event_tap,
    flywheel_setup,
    private_emulator,
    running_flywheel,
)

RECORDS = 400
SEED = 11
INDEX_TIMEOUT_S = 120.0


@pytest.fixture(scope="package")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A private emulator with zero timings; tests change its timings through the admin API."""
    # It keeps the bodies of the requests the services send, for test_nmp_requests.
    env = {"NMP_EMULATOR_RECORD_REQUESTS": "true"}
    with private_emulator(tmp_path_factory.mktemp("nmp"), env=env) as client:
        yield client


@pytest.fixture(scope="package")
def setup(stack: StackHandle, emulator: httpx.Client) -> FlywheelSetup:
    return flywheel_setup(stack, emulator, "e2e")


@pytest.fixture(scope="package")
def flywheel(setup: FlywheelSetup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flywheel]:
    with running_flywheel(setup, tmp_path_factory.mktemp("services")) as running:
        yield running


@dataclass(frozen=True)
class Traffic:
    client_id: str
    records: int
    workloads: dict[str, int]


@pytest.fixture(scope="package")
def traffic(
    stack: StackHandle,
    setup: FlywheelSetup,
    flywheel: Flywheel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Traffic]:
    """Generated agent traffic of a client of its own, shipped and indexed."""
    client_id = setup.name
    staged = tmp_path_factory.mktemp("traffic") / f"{client_id}.partial"
    summary = generate_to_file(staged, RECORDS, SEED, TrafficConfig(client_ids=(client_id,)))
    assert summary.workloads.get(ROUTER, 0) >= 100, "too little tool-calling traffic"
    assert summary.workloads.get(CHAT, 0) >= 100, "too little generic chat traffic"
    if stack.shipper_dir is not None:
        shipped: Path | None = ship(stack.shipper_dir, staged)
    else:
        _produce_lines(setup.servers.kafka_bootstrap, setup.raw_topic, staged)
        shipped = None
    try:
        seconds = wait_indexed(
            setup.servers.elasticsearch_url, setup.index, client_id, RECORDS, INDEX_TIMEOUT_S
        )
        print(f"{RECORDS} records shipped and searchable in {seconds:.1f}s")
        yield Traffic(client_id, RECORDS, summary.workloads)
    finally:
        if shipped is not None:
            shipped.unlink(missing_ok=True)


def _produce_lines(bootstrap: str, topic: str, path: Path) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    with path.open("rb") as lines:
        for line in lines:
            producer.produce(topic, line.rstrip(b"\n"), key=str(path).encode())
            producer.poll(0)
    assert producer.flush(30) == 0, "logs.raw did not take every line"


@pytest.fixture(scope="package")
async def tap(setup: FlywheelSetup) -> AsyncIterator[EventTap]:
    async with event_tap(setup) as events:
        yield events


@pytest.fixture(scope="module")
async def world_tap(world: PrivateFlywheel) -> AsyncIterator[EventTap]:
    """The event tap of a module's own flywheel: its `world` fixture, a `PrivateFlywheel`."""
    async with event_tap(world.setup) as events:
        yield events
