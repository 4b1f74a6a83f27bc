"""OpenAI-compatible chat endpoints (candidates and the judge), called with a per-attempt
timeout, bounded retries on transient errors, and 429s waited out.

Each attempt is one HTTP request, timed on its own: the latency reported for a candidate is what
one successful request took, not the retries before it. The answer is classified the NMP
client's way (5xx, 408, timeouts and connection failures are transient; other 4xx are not), with
two answers of their own:

- 429 is waited out (waits.py): it does not use up an attempt, and is counted; a request
  rate limited for too long raises RateLimited, which ends the evaluation;
- so is an endpoint accepting no connection (a platform restart): a request waiting for it
  longer than `chat.unreachable_max_s` raises Unreachable, which ends the evaluation;
- a 400 refusing the tool schemas (refusals.py) raises SchemaRefused, which ends it too.

A remote endpoint (the judge on build.nvidia.com, an external candidate) may want an API key,
extra headers and a CA bundle of its own (`Credentials`), and an external candidate has its own
concurrency and timeout (`Limits`). They go into that endpoint's clients only: an endpoint is
one base URL with one set of credentials and limits, so a candidate, even one on the judge's
base URL, never receives the judge's key. Error texts are masked with the key, in case a server
echoes it.
"""

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from pydantic import SecretStr

from flywheel_contracts.runtime.nmp import ChatCompletion, NmpError, NmpRetryableError
from flywheel_contracts.runtime.nmp.errors import error_for_request, error_for_response
from flywheel_contracts.runtime.nmp.http import Sleep, read
from flywheel_contracts.runtime.nmp.nim import openai_base_url
from flywheel_contracts.runtime.secrets import bearer_headers
from flywheel_evaluator.clients.pools import Pools
from flywheel_evaluator.clients.refusals import is_schema_refusal
from flywheel_evaluator.clients.waits import WaitBudget
from flywheel_evaluator.config import ChatSettings
from flywheel_evaluator.errors import ChatFailed, RateLimited, SchemaRefused, Unreachable

_JSON = {"Content-Type": "application/json"}
_MASK = "**********"


@dataclass(frozen=True, slots=True)
class ChatResult:
    completion: ChatCompletion
    latency_ms: float
    attempts: int
    rate_limited: int = 0
    """429 answers waited out before this one."""

    @property
    def prompt_tokens(self) -> int | None:
        usage = self.completion.usage
        return usage.prompt_tokens if usage else None

    @property
    def completion_tokens(self) -> int | None:
        usage = self.completion.usage
        return usage.completion_tokens if usage else None


@dataclass(frozen=True, slots=True)
class Credentials:
    """How a remote endpoint is reached: a bearer key, extra (non-secret) headers and the CAs to
    trust (the repr shows neither the key nor its length)."""

    api_key: SecretStr | None = None
    ca_bundle: Path | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()

    def headers(self) -> dict[str, str]:
        return bearer_headers(self.api_key, self.extra_headers)

    def tls(self) -> ssl.SSLContext | None:
        """A context trusting `ca_bundle`; None: the default (system) trust."""
        if self.ca_bundle is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def mask(self, text: str) -> str:
        if self.api_key is None or not self.api_key.get_secret_value():
            return text
        return text.replace(self.api_key.get_secret_value(), _MASK)


NO_CREDENTIALS = Credentials()


@dataclass(frozen=True, slots=True)
class Limits:
    """An endpoint's own limits (an external endpoint's); None takes the chat settings'."""

    concurrency: int | None = None
    """Requests in flight at most, across every evaluation using the endpoint."""
    timeout_s: float | None = None
    """One attempt's deadline."""


SETTINGS_LIMITS = Limits()


class ChatEndpoint:
    """`POST {base_url}/chat/completions` with retries, over the endpoint's connections."""

    def __init__(
        self,
        base_url: str,
        settings: ChatSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        credentials: Credentials = NO_CREDENTIALS,
        limits: Limits = SETTINGS_LIMITS,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self._credentials = credentials
        self.concurrency = limits.concurrency or settings.concurrency
        """Records in flight per evaluation."""
        # An endpoint's own limit holds across the evaluations sharing it; without one, up to
        # worker.max_concurrent evaluations share it: room for a few at full concurrency.
        self._slots = asyncio.Semaphore(limits.concurrency) if limits.concurrency else None
        timeout_s = limits.timeout_s or settings.request_timeout_s
        self._pools = Pools(
            openai_base_url(base_url),
            max_connections=limits.concurrency or settings.concurrency * 4,
            timeout=httpx.Timeout(timeout_s, connect=min(settings.connect_timeout_s, timeout_s)),
            transport=transport,
            headers=credentials.headers(),
            tls=credentials.tls(),
        )

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, object]], **options: object
    ) -> ChatResult:
        """The completion; ChatFailed once retries are spent or the error is permanent,
        RateLimited or SchemaRefused when the evaluation cannot go on."""
        # orjson, not the stdlib encoder httpx would use: bodies carry the tool schemas, and
        # encoding them showed in the evaluator's CPU profile.
        body = orjson.dumps({**options, "model": model, "messages": messages})
        async with self._slot():
            return await self._send(body, carries_tools=bool(options.get("tools")))

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        # Held through retries and 429 waits: a rate-limited endpoint gets fewer requests, not
        # the same number from other records.
        if self._slots is None:
            yield
            return
        async with self._slots:
            yield

    async def _send(self, body: bytes, *, carries_tools: bool) -> ChatResult:
        attempt = 0
        limited = WaitBudget.rate_limits(self._settings)
        down = WaitBudget.outages(self._settings)
        while True:
            attempt += 1
            started = time.perf_counter()
            error: NmpError
            with self._pools.client() as client:
                request = client.build_request(
                    "POST", "/chat/completions", content=body, headers=_JSON
                )
                try:
                    response = await client.send(request)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    attempt -= 1  # nobody there to fail: an outage, not a failed attempt
                    wait = down.next_wait()
                    if wait is None:
                        message = f"POST {request.url}: {down.verdict('refused connections')}"
                        raise Unreachable(
                            f"{message}; last: {self._credentials.mask(str(exc))}",
                            attempts=attempt,
                            rate_limited=limited.count,
                        ) from exc
                    await self._sleep(wait)
                    continue
                except httpx.RequestError as exc:
                    response, error = None, error_for_request(request, exc)
            if response is not None and response.status_code == httpx.codes.TOO_MANY_REQUESTS:
                attempt -= 1  # "not now" is no failed attempt
                wait = limited.next_wait(response.headers.get("Retry-After"))
                if wait is None:
                    message = f"POST {request.url}: rate limited: {limited.verdict('answers 429')}"
                    raise RateLimited(message, attempts=attempt, rate_limited=limited.count)
                await self._sleep(wait)
                continue
            if response is not None and response.is_success:
                try:
                    completion = read(response, ChatCompletion)
                except NmpError as exc:
                    raise self._failed(exc, attempt, limited.count) from exc
                if not completion.choices:
                    raise ChatFailed(
                        "the completion has no choices",
                        attempts=attempt,
                        rate_limited=limited.count,
                    )
                latency_ms = (time.perf_counter() - started) * 1000
                return ChatResult(completion, latency_ms, attempt, limited.count)
            if response is not None:
                error = error_for_response(response)
                if is_schema_refusal(response.status_code, error.body, carried_tools=carries_tools):
                    raise SchemaRefused(
                        self._credentials.mask(str(error)),
                        server_text=self._credentials.mask(error.body),
                        attempts=attempt,
                    )
            if not isinstance(error, NmpRetryableError) or attempt >= self._settings.attempts:
                raise self._failed(error, attempt, limited.count)
            delay = self._settings.backoff_s * 2 ** (attempt - 1)
            await self._sleep(min(delay, self._settings.backoff_max_s))

    def _failed(self, error: NmpError, attempts: int, rate_limited: int) -> ChatFailed:
        return ChatFailed(
            self._credentials.mask(str(error)), attempts=attempts, rate_limited=rate_limited
        )

    async def aclose(self) -> None:
        await self._pools.aclose()


class ChatEndpoints:
    """The endpoints in use, one per base URL, credentials and limits, shared by every
    evaluation against it: the judge's (with its key) and a candidate's are separate even on
    one URL."""

    def __init__(
        self,
        settings: ChatSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._sleep = sleep
        self._endpoints: dict[tuple[str, Credentials, Limits], ChatEndpoint] = {}

    def get(
        self,
        base_url: str,
        credentials: Credentials = NO_CREDENTIALS,
        limits: Limits = SETTINGS_LIMITS,
    ) -> ChatEndpoint:
        url = openai_base_url(base_url)
        key = (url, credentials, limits)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = ChatEndpoint(
                url,
                self._settings,
                transport=self._transport,
                sleep=self._sleep,
                credentials=credentials,
                limits=limits,
            )
            self._endpoints[key] = endpoint
        return endpoint

    async def aclose(self) -> None:
        endpoints, self._endpoints = list(self._endpoints.values()), {}
        for endpoint in endpoints:
            await endpoint.aclose()
