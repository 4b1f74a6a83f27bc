"""Every request body the services sent to NMP during a whole run, checked key by key against
the official SDK's request parameter types (`nemo-microservices`): no field the SDK does not
know, none it requires missing, no value of the wrong type."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from flywheel_contracts.runtime.nmp.testing.sdk import request_problems
from flywheel_contracts.traffic import ROUTER
from flywheel_localstack.services import Flywheel, FlywheelSetup
from flywheel_nim_manager.testing.process import EventTap
from tests.e2e.conftest import Traffic
from tests.e2e.test_flywheel import completed_demo_run

pytestmark = pytest.mark.e2e

# What a tool-calling run with a customized candidate must have asked NMP to do.
EXPECTED_CALLS = {
    ("POST", "/v1/deployment/model-deployments"),
    ("POST", "/v1/customization/configs"),
    ("POST", "/v1/customization/jobs"),
    ("POST", "/v1/chat/completions"),
}


async def test_every_request_of_a_run_is_one_the_official_sdk_could_send(
    setup: FlywheelSetup,
    flywheel: Flywheel,
    traffic: Traffic,
    tap: EventTap,
    emulator: httpx.Client,
) -> None:
    await completed_demo_run(setup, tap, ROUTER, traffic.client_id)

    response = await asyncio.to_thread(emulator.get, "/emulator/requests")
    response.raise_for_status()
    sent = response.json()["requests"]
    calls = Counter((r["method"], r["path"]) for r in sent)
    print(f"\n{len(sent)} request bodies checked: {dict(calls)}")
    missing = {call for call in EXPECTED_CALLS if not calls[call]}
    assert not missing, f"the run never made these calls: {missing}"
    problems = [p for r in sent for p in request_problems(r["method"], r["path"], r["body"])]
    assert problems == [], "\n".join(problems)
