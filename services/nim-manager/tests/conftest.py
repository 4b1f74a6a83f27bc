"""Fixtures of nim-manager's tests: the in-memory world for unit tests; a private emulator and a
per-test harness (topic prefix, database) for integration tests."""

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from pymongo import MongoClient

from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_nim_manager.testing.fakes import World
from flywheel_nim_manager.testing.process import EmulatorAdmin, Harness, unique_prefix
from flywheel_nmp_emulator.testing import emulator_process, free_port

EMULATOR_GPUS = 8


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorAdmin]:
    """One private emulator for nim-manager's integration tests, so their timings and GPUs never
    touch the shared one; each test sets the deploy time it needs."""
    port = free_port()
    state = tmp_path_factory.mktemp("nmp") / "state.json"
    with emulator_process(state, port, gpus=EMULATOR_GPUS) as admin:
        yield EmulatorAdmin(url=f"http://127.0.0.1:{port}", admin=admin)


@pytest.fixture
def harness(stack: StackHandle, emulator: EmulatorAdmin) -> Iterator[Harness]:
    """Topics under a prefix and a database of the test's own; the database is dropped after."""
    harness = Harness(
        kafka_bootstrap=stack.kafka_bootstrap,
        mongo_url=stack.mongo_url,
        emulator=emulator,
        prefix=unique_prefix(),
        database=f"nim_manager_test_{uuid4().hex[:8]}",
    )
    yield harness
    client: MongoClient[dict[str, Any]]
    with MongoClient(stack.mongo_url) as client:
        client.drop_database(harness.database)
