"""Readiness: every dependency is really asked, concurrently, each within a short timeout."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

ReadinessCheck = Callable[[], Awaitable[None]]
"""Returns when the dependency answers; raises (anything) when it does not."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    duration_ms: float
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"ok": self.ok, "duration_ms": round(self.duration_ms, 1)}
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class Readiness:
    checks: tuple[CheckResult, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "unready",
            "checks": {check.name: check.as_json() for check in self.checks},
        }


async def run_checks(checks: Mapping[str, ReadinessCheck], timeout_s: float) -> Readiness:
    results = await asyncio.gather(
        *(_run_one(name, check, timeout_s) for name, check in checks.items())
    )
    return Readiness(tuple(results))


async def _run_one(name: str, check: ReadinessCheck, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout_s)
    except TimeoutError:
        error: str | None = f"no answer within {timeout_s:g}s"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    else:
        error = None
    return CheckResult(name, error is None, (time.perf_counter() - started) * 1000, error)
