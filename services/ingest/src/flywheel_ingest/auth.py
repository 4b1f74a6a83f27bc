"""Who may write to the intake, in every form a real producer sends its credential, and how
often.

Applications send `Authorization: Bearer <token>`; Elasticsearch clients (NAT's exporter, log
shippers) send `ApiKey <token>` or HTTP basic auth, whose password is then the token (the user
name is not checked: the token alone is the secret). OTLP exporters send whatever header their
configuration names, usually the bearer form.

A request is admitted with any configured token: the global one (every client) or a scoped one,
whose name then goes with the request's lines (see `scope`).
"""

import base64
import binascii
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Header, HTTPException, Request
from pydantic import SecretStr

from flywheel_ingest.config import IntakeSettings

_UNAUTHORIZED = 401
_TOO_MANY_REQUESTS = 429

Clock = Callable[[], float]
"""Seconds on a monotonic clock (the kit's convention: `time.monotonic` unless a test's)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What an admitted request may write: `token` names a scoped token (its clients only);
    None stands for every client (the global token, or an open intake)."""

    token: str | None = None


def presented_token(header: str | None) -> str | None:
    """The token an `Authorization` header carries, whatever its scheme; None when none."""
    scheme, _, value = (header or "").partition(" ")
    value = value.strip()
    match scheme.lower():
        case "bearer" | "apikey":
            return value or None
        case "basic":
            return _basic_password(value) or None
        case _:
            return None


def authenticate(header: str | None, settings: IntakeSettings) -> Grant | None:
    """The grant of the token the header carries; None when it carries no configured token.
    Without any token configured, every request gets every client."""
    if not settings.authenticated:
        return Grant()
    presented = presented_token(header)
    if presented is None:
        return None
    # Every secret is compared, so the time taken does not tell which one nearly matched.
    matches = [name for name, scoped in settings.tokens.items() if _same(presented, scoped.secret)]
    if settings.token is not None and _same(presented, settings.token):
        return Grant()
    return Grant(matches[0]) if matches else None


def _same(presented: str, token: SecretStr) -> bool:
    return secrets.compare_digest(presented.encode(), token.get_secret_value().encode())


def _basic_password(value: str) -> str:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


class TokenBuckets:
    """One token bucket per key (an intake token, an address): `burst` requests at once,
    refilled at `rate` a second; no limit when `rate` is None. Pure but for the clock, which
    tests drive."""

    MAX_KEYS = 10_000
    """Past this many keys, the full buckets (idle keys) are forgotten: addresses are many."""

    def __init__(self, rate: float | None, burst: int, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str | None, tuple[float, float]] = {}  # key: (level, at)

    def __len__(self) -> int:
        """Keys remembered."""
        return len(self._buckets)

    def _level(self, key: str | None, now: float) -> float:
        assert self._rate is not None
        level, at = self._buckets.get(key, (self._burst, now))
        return min(self._burst, level + (now - at) * self._rate)

    def wait(self, key: str | None) -> float | None:
        """The seconds until `key` may send one request; None when it may now."""
        if self._rate is None:
            return None
        level = self._level(key, self._clock())
        return None if level >= 1 else (1 - level) / self._rate

    def take(self, key: str | None) -> float | None:
        """Take one request from `key`'s bucket: None when allowed, else the seconds until one
        request will be."""
        if self._rate is None:
            return None
        now = self._clock()
        level = self._level(key, now)
        if level < 1:
            self._buckets[key] = (level, now)
            return (1 - level) / self._rate
        self._buckets[key] = (level - 1, now)
        if len(self._buckets) > self.MAX_KEYS:
            self._forget_full(now)
        return None

    def _forget_full(self, now: float) -> None:
        full = [key for key in self._buckets if self._level(key, now) >= self._burst]
        for key in full:
            del self._buckets[key]


class IntakeGate:
    """The intake routes' admission: a configured token (401 otherwise), then its rate (429
    with `Retry-After`). `admit` is a FastAPI dependency returning the request's `Grant`."""

    def __init__(self, settings: IntakeSettings, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        limits = settings.rate_limit
        self._buckets = TokenBuckets(limits.requests_per_s, limits.burst, clock)
        self._failures = TokenBuckets(limits.failed_auth_per_s, limits.failed_auth_burst, clock)

    async def admit(self, request: Request, authorization: str | None = Header(None)) -> Grant:
        address = request.client.host if request.client else None
        # An address that has run out of failures is not even checked: guessing stays slow.
        throttled = self._failures.wait(address)
        if throttled is not None:
            raise _too_many("too many requests without a valid token from this address", throttled)
        grant = authenticate(authorization, self._settings)
        if grant is None:
            self._failures.take(address)
            raise HTTPException(
                _UNAUTHORIZED,
                "a valid token is required (Bearer, ApiKey or basic auth's password)",
                headers={"WWW-Authenticate": 'Bearer, Basic realm="flywheel"'},
            )
        # The global token and the open intake share one bucket; each scoped token has its own.
        wait_s = self._buckets.take(grant.token)
        if wait_s is not None:
            raise _too_many("too many requests for this token", wait_s)
        return grant


def _too_many(reason: str, wait_s: float) -> HTTPException:
    return HTTPException(
        _TOO_MANY_REQUESTS,
        f"{reason}; retry after the Retry-After seconds",
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
    )
