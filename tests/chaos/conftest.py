"""The flywheel the chaos suite breaks: the six services as real processes on the local stack
(its own: the suite restarts Kafka and Elasticsearch, see README.md), a private NMP emulator
slowed down so every stage of a run lasts a moment a fault can fall into, a tap on the
flywheel's topics, and tool-calling traffic shipped through the real log shipper.

One flywheel per module: the scenarios run one after another on it, each on a run of its own,
and each leaves it whole again (a killed service restarted, a stopped server started).
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_contracts.runtime.testing import ServiceProcess
from flywheel_localstack.config import StackSettings
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_localstack.services import Flywheel, FlywheelSetup
from flywheel_nim_manager.testing.process import EventTap
from tests.chaos.harness import Harness
from tests.chaos.report import ChaosReport
from tests.chaos.traffic import Batch, Shipments, generate, indexed_exactly
from tests.support.world import event_tap, flywheel_setup, restartable_emulator, running_flywheel

SEED_VARIABLE = "FLYWHEEL_CHAOS_SEED"
RECORDS = 400
TRAFFIC_SEED = 11
# Each stage takes a second or a few, so a run lasts long enough for a fault to land inside it.
TIMINGS = {
    "deploy_seconds": 1.5,
    "training_seconds_per_epoch": 4.0,
    "model_sync_seconds": 0.5,
    "eval_seconds_per_record": 0.1,
}
_REPORT = pytest.StashKey[ChaosReport]()


@pytest.fixture(scope="session")
def chaos(request: pytest.FixtureRequest) -> ChaosReport:
    """The session's report; its seed comes from FLYWHEEL_CHAOS_SEED, or is drawn and printed."""
    seed = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(10**6))
    report = ChaosReport(seed)
    request.config.stash[_REPORT] = report
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT, None)
    if report is None:
        return
    terminalreporter.section("chaos report")
    for line in report.lines():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def own_stack(stack: StackHandle) -> StackHandle:
    """The stack, unless it is the default one others share: restarting its Kafka would break
    every other test running on it."""
    if StackSettings().state_dir == StackSettings.model_fields["state_dir"].default:
        pytest.skip("the chaos suite needs a stack of its own: run `make chaos`")
    return stack


@pytest.fixture(scope="module")
def shipper_dir(own_stack: StackHandle) -> Path:
    if own_stack.shipper_dir is None:
        pytest.skip("the chaos suite ships through the local stack's log shipper")
    return own_stack.shipper_dir


@pytest.fixture(scope="module")
def nmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, httpx.Client]]:
    with restartable_emulator(tmp_path_factory.mktemp("nmp"), TIMINGS) as running:
        yield running


@pytest.fixture(scope="module")
def emulator(nmp: tuple[ServiceProcess, httpx.Client]) -> httpx.Client:
    return nmp[1]


@pytest.fixture(scope="module")
def setup(own_stack: StackHandle, emulator: httpx.Client) -> FlywheelSetup:
    return flywheel_setup(own_stack, emulator, "chaos")


@pytest.fixture(scope="module")
def flywheel(setup: FlywheelSetup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flywheel]:
    with running_flywheel(setup, tmp_path_factory.mktemp("services")) as running:
        yield running


@pytest.fixture(scope="module")
async def tap(setup: FlywheelSetup) -> AsyncIterator[EventTap]:
    async with event_tap(setup) as events:
        yield events


@pytest.fixture(scope="module")
def harness(
    own_stack: StackHandle,
    setup: FlywheelSetup,
    flywheel: Flywheel,
    tap: EventTap,
    nmp: tuple[ServiceProcess, httpx.Client],
) -> Harness:
    return Harness(own_stack, setup, flywheel, tap, *nmp)


@pytest.fixture
def shipments(shipper_dir: Path) -> Iterator[Shipments]:
    shipped = Shipments(shipper_dir)
    yield shipped
    shipped.remove()


@pytest.fixture(scope="module")
def traffic(
    flywheel: Flywheel,
    setup: FlywheelSetup,
    shipper_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Batch]:
    """Tool-calling traffic of a client of its own, shipped and indexed before any fault."""
    batch = generate(
        tmp_path_factory.mktemp("traffic"), f"{setup.name}-base", RECORDS, TRAFFIC_SEED
    )
    shipped = Shipments(shipper_dir)
    try:
        for part in batch.parts:
            shipped.ship(part)
        indexed_exactly(setup, batch)
        yield batch
    finally:
        shipped.remove()
