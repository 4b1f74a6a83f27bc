import asyncio

import pytest

from flywheel_contracts.runtime.health import run_checks

pytestmark = pytest.mark.unit


async def _ok() -> None:
    return None


async def _broken() -> None:
    raise ConnectionRefusedError("connection refused")


async def _hanging() -> None:
    await asyncio.sleep(10)


async def test_ready_only_when_every_check_answers() -> None:
    assert (await run_checks({"kafka": _ok, "mongo": _ok}, timeout_s=1)).ready


async def test_a_failing_or_silent_dependency_makes_the_service_unready() -> None:
    readiness = await run_checks({"kafka": _ok, "mongo": _broken, "nmp": _hanging}, timeout_s=0.05)

    body = readiness.as_json()
    assert not readiness.ready
    assert body["status"] == "unready"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["kafka"]["ok"] is True
    assert checks["mongo"] == {
        "ok": False,
        "duration_ms": checks["mongo"]["duration_ms"],
        "error": "ConnectionRefusedError: connection refused",
    }
    assert checks["nmp"]["error"] == "no answer within 0.05s"
