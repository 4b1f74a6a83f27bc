"""OpenAI-compatible chat endpoints (candidates and the judge), called with a per-attempt
timeout and bounded retries on transient errors.

The NMP client's host caller does the HTTP and the error classification (5xx, 408/429,
timeouts and connection failures are retryable); the retry loop lives here so that each attempt
is timed on its own: the latency reported for a candidate is what one successful request took,
not the retries before it.

A remote endpoint (the judge on build.nvidia.com, say) may want an API key and a CA bundle of
its own (`Credentials`): the key goes into that endpoint's client headers only, so a candidate,
even one on the same base URL, never receives it.
"""

import asyncio
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from pydantic import SecretStr

from flywheel_contracts.runtime.nmp import ChatCompletion, NmpError, NmpRetryableError
from flywheel_contracts.runtime.nmp.http import Call, RetryPolicy, Sleep, read
from flywheel_contracts.runtime.nmp.nim import openai_base_url
from flywheel_evaluator.clients.pools import Pools
from flywheel_evaluator.config import ChatSettings
from flywheel_evaluator.errors import ChatFailed

# One attempt per HostCaller.send: this module retries.
_SINGLE_ATTEMPT = RetryPolicy(attempts=1, backoff_s=0.0, backoff_max_s=0.0)
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class ChatResult:
    completion: ChatCompletion
    latency_ms: float
    attempts: int

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
    """How a remote endpoint is reached: a bearer key and the CAs to trust (the repr shows
    neither the key nor its length)."""

    api_key: SecretStr | None = None
    ca_bundle: Path | None = None

    def headers(self) -> dict[str, str]:
        if self.api_key is None:
            return {}
        return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}

    def tls(self) -> ssl.SSLContext | None:
        """A context trusting `ca_bundle`; None: the default (system) trust."""
        if self.ca_bundle is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_bundle))


NO_CREDENTIALS = Credentials()


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
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        # Up to worker.max_concurrent evaluations share an endpoint: room for a few of them at
        # full concurrency.
        self._pools = Pools(
            openai_base_url(base_url),
            max_connections=settings.concurrency * 4,
            timeout=httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s),
            policy=_SINGLE_ATTEMPT,
            sleep=sleep,
            transport=transport,
            headers=credentials.headers(),
            tls=credentials.tls(),
        )

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, object]], **options: object
    ) -> ChatResult:
        """The completion; ChatFailed once retries are spent or the error is permanent."""
        # orjson, not the stdlib encoder httpx would use: bodies carry the tool schemas, and
        # encoding them showed in the evaluator's CPU profile.
        body = orjson.dumps({**options, "model": model, "messages": messages})
        call = Call("POST", "/chat/completions", content=body, headers=_JSON)
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                with self._pools.caller() as caller:
                    response = await caller.send(call)
                completion = read(response, ChatCompletion)
            except NmpError as exc:
                retry = isinstance(exc, NmpRetryableError) and attempt < self._settings.attempts
                if not retry:
                    raise ChatFailed(str(exc), attempts=attempt) from exc
                delay = self._settings.backoff_s * 2 ** (attempt - 1)
                await self._sleep(min(delay, self._settings.backoff_max_s))
                continue
            latency_ms = (time.perf_counter() - started) * 1000
            if not completion.choices:
                raise ChatFailed("the completion has no choices", attempts=attempt)
            return ChatResult(completion, latency_ms, attempt)

    async def aclose(self) -> None:
        await self._pools.aclose()


class ChatEndpoints:
    """The endpoints in use, one per base URL and credentials, shared by every evaluation
    against it: the judge's (with its key) and a candidate's are separate even on one URL."""

    def __init__(
        self, settings: ChatSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._endpoints: dict[tuple[str, Credentials], ChatEndpoint] = {}

    def get(self, base_url: str, credentials: Credentials = NO_CREDENTIALS) -> ChatEndpoint:
        url = openai_base_url(base_url)
        endpoint = self._endpoints.get((url, credentials))
        if endpoint is None:
            endpoint = ChatEndpoint(
                url, self._settings, transport=self._transport, credentials=credentials
            )
            self._endpoints[(url, credentials)] = endpoint
        return endpoint

    async def aclose(self) -> None:
        endpoints, self._endpoints = list(self._endpoints.values()), {}
        for endpoint in endpoints:
            await endpoint.aclose()
