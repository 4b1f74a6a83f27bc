"""One NMP host: send a call with a per-attempt timeout, classify the answer, retry what may heal."""

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from .errors import (
    NmpError,
    NmpProtocolError,
    NmpRetryableError,
    error_for_request,
    error_for_response,
)
from .models import AlreadyExists, Created

Sleep = Callable[[float], Awaitable[None]]
ExistsCheck = Callable[[httpx.Response], bool]
ModelT = TypeVar("ModelT", bound=BaseModel)

# Failures that prove the request never reached NMP, so even a non-idempotent call may be resent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Call:
    """One HTTP call to a host, relative to its base URL.

    ``idempotent=False`` marks calls that create something new on every success (a customization
    or evaluation job): after a 5xx or a read timeout NMP may have created it anyway, and a resend
    would start a second GPU job, so those are retried only when the request was never sent.

    ``stream`` makes the body instead of ``content``: a fresh iterator of its pieces for each
    attempt, so a large upload is never held whole and can still be retried.
    """

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    json: object = None
    data: Mapping[str, str] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    idempotent: bool = True
    timeout: httpx.Timeout | None = None
    stream: Callable[[], AsyncIterator[bytes]] | None = None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    backoff_s: float
    backoff_max_s: float

    def delay(self, failed_attempt: int) -> float:
        """Exponential: backoff, 2*backoff, 4*backoff ... capped. No jitter: a handful of service
        instances cannot stampede NMP, and deterministic delays keep the tests exact."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** (failed_attempt - 1)))


def is_conflict(response: httpx.Response) -> bool:
    return response.status_code == httpx.codes.CONFLICT


def is_duplicate_namespace(response: httpx.Response) -> bool:
    """Entity Store and Data Store answer a duplicate namespace with 409 or, in some releases, 422."""
    return response.status_code in {httpx.codes.CONFLICT, httpx.codes.UNPROCESSABLE_ENTITY}


class HostCaller:
    """Sends calls to one base URL through a shared httpx client."""

    def __init__(self, client: httpx.AsyncClient, policy: RetryPolicy, sleep: Sleep) -> None:
        self._client = client
        self._policy = policy
        self._sleep = sleep

    @overload
    async def send(self, call: Call, exists: None = None) -> httpx.Response: ...

    @overload
    async def send(self, call: Call, exists: ExistsCheck) -> httpx.Response | AlreadyExists: ...

    async def send(
        self, call: Call, exists: ExistsCheck | None = None
    ) -> httpx.Response | AlreadyExists:
        """The 2xx response, or AlreadyExists when ``exists`` recognises the answer.

        Raises the typed NmpError of the last attempt once retries are spent or not allowed.
        """
        attempt = 1
        while True:
            error: NmpError
            request = self._request(call)
            try:
                response = await self._client.send(request)
            except httpx.RequestError as exc:
                error = error_for_request(request, exc)
                may_retry = isinstance(error, NmpRetryableError) and (
                    call.idempotent or isinstance(exc, _NOT_SENT)
                )
            else:
                if exists is not None and exists(response):
                    return AlreadyExists(response.status_code, response.text[:500])
                if response.is_success:
                    return response
                error = error_for_response(response)
                may_retry = call.idempotent and isinstance(error, NmpRetryableError)
            if not may_retry or attempt >= self._policy.attempts:
                raise error
            await self._sleep(self._policy.delay(attempt))
            attempt += 1

    def _request(self, call: Call) -> httpx.Request:
        return self._client.build_request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            data=call.data,
            content=call.stream() if call.stream is not None else call.content,
            headers=call.headers,
            timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )

    async def create(
        self, call: Call, exists: ExistsCheck = is_conflict
    ) -> Created | AlreadyExists:
        """A create whose response body nobody reads."""
        result = await self.send(call, exists)
        return result if isinstance(result, AlreadyExists) else Created(result.status_code)


def read(response: httpx.Response, model: type[ModelT]) -> ModelT:
    """Parse a response body into ``model``; a body off the contract is a permanent error."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        request = response.request
        raise NmpProtocolError(
            f"{request.method} {request.url}: unexpected body for {model.__name__}: {exc}",
            method=request.method,
            url=str(request.url),
            status_code=response.status_code,
            body=response.text[:500],
        ) from exc


def segment(value: str) -> str:
    """One path segment. '@' and '+' stay literal as in NMP's own URLs (config and model ids);
    anything that would change the URL's structure ('/', '?', '#', ...) is percent-encoded."""
    return quote(value, safe="@+:")


def path_tail(value: str) -> str:
    """Several segments whose slashes are structure: a model id ``dfwbp/customized-x@cust-1``
    (C4, C5) or a file path inside a repo."""
    return "/".join(segment(part) for part in value.split("/"))
