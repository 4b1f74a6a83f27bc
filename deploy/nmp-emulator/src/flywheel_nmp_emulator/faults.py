"""Failure injection: per-endpoint error rates and timeouts, and jobs that fail by model name.

Decisions come from a counter-based hash of (seed, path prefix, request number), so the same seed
and the same request sequence give the same faults, without sharing a global random generator.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flywheel_nmp_emulator.config import EndpointFault, Faults
from flywheel_nmp_emulator.draws import unit_draw

# The admin and health paths must keep working while faults are on, or tests could not undo them.
EXEMPT_PREFIXES = ("/emulator", "/health")


class FaultInjector:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._counters: dict[str, int] = {}

    def configure(self, faults: Faults) -> None:
        self.faults = faults
        self._counters.clear()

    def rule_for(self, method: str, path: str) -> tuple[str, EndpointFault] | None:
        best: tuple[str, EndpointFault] | None = None
        for prefix, rule in self.faults.endpoints.items():
            if not path.startswith(prefix):
                continue
            if rule.methods and method.upper() not in {m.upper() for m in rule.methods}:
                continue
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, rule)
        return best

    def decide(self, method: str, path: str) -> tuple[str, EndpointFault] | None:
        """Return ("error"|"timeout"|"late", rule) when this request must misbehave, else None."""
        if path.startswith(EXEMPT_PREFIXES) or not self.faults.endpoints:
            return None
        found = self.rule_for(method, path)
        if found is None:
            return None
        prefix, rule = found
        n = self._counters.get(prefix, 0)
        self._counters[prefix] = n + 1
        draw = unit_draw(self.faults.seed, prefix, n)
        if draw < rule.timeout_rate:
            return "timeout", rule
        if draw < rule.timeout_rate + rule.error_rate:
            return "error", rule
        if draw < rule.timeout_rate + rule.error_rate + rule.late_answer_rate:
            return "late", rule
        return None

    def job_fails(self, kind: str, model: str) -> bool:
        patterns = {
            "deployment": self.faults.fail_deployments,
            "customization": self.faults.fail_customizations,
            "evaluation": self.faults.fail_evaluations,
        }[kind]
        return any(p and p in model for p in patterns)


_HOLD_POLL_S = 0.1


class FaultMiddleware:
    """Pure ASGI middleware (BaseHTTPMiddleware would cost the hot chat path too much)."""

    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        verdict = self.injector.decide(scope["method"], scope["path"])
        if verdict is None:
            await self.app(scope, receive, send)
            return
        kind, rule = verdict
        if kind == "late":
            held: list[Message] = []

            async def hold(message: Message) -> None:
                held.append(message)

            await self.app(scope, receive, hold)
            await self._hold_while_configured(scope, rule)
            for message in held:
                await send(message)
            return
        if kind == "timeout":
            await asyncio.sleep(rule.timeout_seconds)
            status, detail = 504, "injected timeout"
        else:
            status, detail = rule.error_status, "injected error"
        body = orjson.dumps({"detail": detail})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _hold_while_configured(self, scope: Scope, rule: EndpointFault) -> None:
        """Sleep `late_answer_seconds`, or less once the fault is lifted (so a test that clears
        its faults, or a shutdown after it, does not wait for answers nobody reads)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + rule.late_answer_seconds
        while loop.time() < until:
            found = self.injector.rule_for(scope["method"], scope["path"])
            if found is None or found[1].late_answer_rate == 0:
                return
            await asyncio.sleep(min(_HOLD_POLL_S, until - loop.time()))
