"""Shared fixtures: an in-process emulator client and generated customer-service traffic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from flywheel_contracts.traffic.records import TrafficConfig, generate_records
from flywheel_nmp_emulator.config import Settings
from flywheel_nmp_emulator.testing import in_process, tool_call_records

ROUTER = "customer-service-router"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(Settings(gpus=4)) as c:
        yield c


@pytest.fixture(scope="session")
def router_traffic() -> list[dict[str, Any]]:
    """Deduplicated tool-calling records of the router workload (12 tools, some parallel calls)."""
    records = generate_records(1500, seed=11, config=TrafficConfig(workloads=(ROUTER,)))
    return tool_call_records(list(records))
