"""A flywheel under test: a private NMP emulator (so counts of deployments and jobs are exact),
the six services as real processes on the stack under a topic prefix of their own, and a tap on
the flywheel's topics. Each suite's conftest wraps these in fixtures of the scope it needs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from flywheel_contracts.runtime.testing import ServiceProcess
from flywheel_contracts.traffic import ROUTER, TrafficConfig, generate_to_file
from flywheel_ingest.testing import delete_index
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_localstack.services import (
    SERVICES,
    Flywheel,
    FlywheelSetup,
    Servers,
    ship,
    start_new_group_at_end,
    wait_indexed,
)
from flywheel_nim_manager.testing.process import EventTap
from flywheel_nmp_emulator.testing import emulator_service, free_port
from tests.support.runs import kafka

# Enough for three one-GPU deployments and a one-GPU training job at once, with room to spare:
# the GPU budget of nim-manager, not the emulator, is what limits a run here.
EMULATOR_GPUS = 8
GPU_BUDGET = 4
TAPPED = (
    "dataset.ready",
    "dataset.failed",
    "nim.up",
    "nim.failed",
    "nim.down",
    "customization.started",
    "customization.done",
    "eval.started",
    "eval.done",
    "run.completed",
    "run.failed",
    "resources.reclaimed",
)


@contextmanager
def private_emulator(
    folder: Path,
    timings: Mapping[str, float] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[httpx.Client]:
    """An emulator of its own, with zero timings unless `timings` slows some stages down; `env`
    sets further `NMP_EMULATOR_*` settings."""
    with restartable_emulator(folder, timings, env) as (_, client):
        yield client


@contextmanager
def restartable_emulator(
    folder: Path,
    timings: Mapping[str, float] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[ServiceProcess, httpx.Client]]:
    """`private_emulator`, with its process, to kill and start again: its state and `timings`
    (settings, not admin calls, so that they survive) come back with it."""
    settings = {
        f"NMP_EMULATOR_{name.upper()}": str(value) for name, value in (timings or {}).items()
    }
    process = emulator_service(
        folder / "state.json",
        free_port(),
        gpus=EMULATOR_GPUS,
        extra_env={**settings, **(env or {})},
    )
    process.start()
    try:
        with httpx.Client(base_url=process.url, timeout=10) as client:
            yield process, client
    finally:
        process.stop()


def flywheel_setup(stack: StackHandle, emulator: httpx.Client, suite: str) -> FlywheelSetup:
    """Names (topic prefix, index, databases, client ids) start with `suite` and are unique."""
    servers = Servers(
        kafka_bootstrap=stack.kafka_bootstrap,
        mongo_url=stack.mongo_url,
        elasticsearch_url=stack.elasticsearch_url,
        nmp_url=str(emulator.base_url).rstrip("/"),
        kafka_security=stack.kafka_security,
    )
    return FlywheelSetup(servers, name=f"{suite}-{uuid.uuid4().hex[:10]}", gpu_budget=GPU_BUDGET)


@contextmanager
def running_flywheel(
    setup: FlywheelSetup,
    log_dir: Path,
    extra: Mapping[str, Mapping[str, object]] | None = None,
) -> Iterator[Flywheel]:
    """The six services, with ingest reading the shipper's `logs.raw` from its end (it skips
    what other suites shipped before); afterwards their index and databases are dropped.
    `extra` sets further settings per service (`Flywheel`'s)."""
    start_new_group_at_end(setup.servers.kafka(), setup.group("ingest"), setup.raw_topic)
    with Flywheel(setup, log_dir, extra=extra) as running:
        yield running
    delete_index(setup.servers.elasticsearch_url, setup.index)
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(setup.servers.mongo_url) as mongo:
        for service in SERVICES:
            mongo.drop_database(setup.database(service))


@asynccontextmanager
async def event_tap(setup: FlywheelSetup) -> AsyncIterator[EventTap]:
    async with EventTap(kafka(setup), TAPPED) as events:
        yield events


@contextmanager
def router_traffic(
    stack: StackHandle, setup: FlywheelSetup, folder: Path, records: int, seed: int
) -> Iterator[str]:
    """Tool-calling traffic of a client of its own (the flywheel's name), shipped through the
    log shipper and indexed; yields the client id and removes the shipped file afterwards."""
    if stack.shipper_dir is None:
        pytest.skip("needs the local stack's log shipper")
    client = setup.name
    staged = folder / f"{client}.partial"
    generate_to_file(
        staged, records, seed, TrafficConfig(client_ids=(client,), workloads=(ROUTER,))
    )
    shipped = ship(stack.shipper_dir, staged)
    try:
        wait_indexed(setup.servers.elasticsearch_url, setup.index, client, records, 180.0)
        yield client
    finally:
        shipped.unlink(missing_ok=True)


@dataclass(frozen=True)
class PrivateFlywheel:
    """A flywheel of a suite's own: its emulator, services and tool-calling traffic."""

    emulator: httpx.Client
    setup: FlywheelSetup
    flywheel: Flywheel
    client_id: str
    nmp_folder: Path
    """The emulator's state folder (its Data Store files live beside the state file)."""
    logs: Path
    """The services' log files, `<service>.log`."""


@contextmanager
def private_flywheel(
    stack: StackHandle,
    folder: Path,
    suite: str,
    *,
    records: int,
    seed: int,
    emulator_env: Mapping[str, str] | None = None,
    settings: Mapping[str, Mapping[str, object]] | None = None,
) -> Iterator[PrivateFlywheel]:
    """A private emulator (`emulator_env`), the six services (`settings` per service) and
    `records` tool-calling records of a client of its own, shipped and indexed, under `folder`."""
    nmp_folder, logs, traffic = (folder / name for name in ("nmp", "services", "traffic"))
    for made in (nmp_folder, logs, traffic):
        made.mkdir()
    with private_emulator(nmp_folder, env=emulator_env) as emulator:
        setup = flywheel_setup(stack, emulator, suite)
        with (
            running_flywheel(setup, logs, settings) as running,
            router_traffic(stack, setup, traffic, records, seed) as client_id,
        ):
            yield PrivateFlywheel(emulator, setup, running, client_id, nmp_folder, logs)
