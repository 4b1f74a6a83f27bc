"""Typed NMP failures, classified once so every caller retries or dead-letters alike."""

import httpx

from flywheel_contracts.errors import FlywheelError, PermanentError, RetryableError

_BODY_EXCERPT = 500


class NmpError(FlywheelError):
    """Any failed NMP call. Carries the request line and, when there was one, the response."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
        body: str = "",
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status_code = status_code
        self.body = body


class NmpRetryableError(NmpError, RetryableError):
    """5xx, 408/429, connection failures and timeouts: the same call may succeed later."""


class NmpNotFound(NmpError, PermanentError):
    """404: the resource does not exist (deleted, never created, or a wrong name)."""


class NmpConflict(NmpError, PermanentError):
    """409 on a call that is not a create (creates report AlreadyExists instead)."""


class NmpRequestRejected(NmpError, PermanentError):
    """Any other 4xx: NMP refuses this request as it is, so repeating it cannot help."""


class NmpUnauthorized(NmpRequestRejected):
    """401/403: NMP refuses this client's credentials. Permanent: a wrong or missing key does not
    heal by waiting, and retrying for minutes would only hide the misconfiguration."""


class NmpProtocolError(NmpError, PermanentError):
    """The answer does not have the shape nmp-contract.md promises (bad JSON, missing field)."""


# 408 and 429 say "not now" rather than "not this": worth the same retries as a 5xx.
_RETRYABLE_4XX = frozenset({408, 429})
_UNAUTHORIZED = frozenset({401, 403})
# Names the settings to check; never a key (the request's headers are not part of any message).
_CREDENTIALS_HINT = (
    "credentials refused (for NMP: NMP__API_KEY or NMP__API_KEY_FILE for the platform and the "
    "NIM proxy, NMP__HF_TOKEN for the Data Store)"
)


def error_for_response(response: httpx.Response) -> NmpError:
    """The typed error for a non-2xx response."""
    request = response.request
    status = response.status_code
    body = response.text[:_BODY_EXCERPT]
    message = f"{request.method} {request.url} -> {status}: {body}"
    kind: type[NmpError]
    if status >= 500 or status in _RETRYABLE_4XX:
        kind = NmpRetryableError
    elif status == 404:
        kind = NmpNotFound
    elif status == 409:
        kind = NmpConflict
    elif status in _UNAUTHORIZED:
        kind = NmpUnauthorized
        message = f"{request.method} {request.url} -> {status}: {_CREDENTIALS_HINT}: {body}"
    elif 400 <= status < 500:
        kind = NmpRequestRejected
    else:
        # Redirects are followed only where NMP is known to send them (Data Store downloads).
        kind = NmpProtocolError
    return kind(message, method=request.method, url=str(request.url), status_code=status, body=body)


def error_for_request(request: httpx.Request, exc: httpx.RequestError) -> NmpError:
    """The typed error for a call that got no usable response: timeouts and connection failures
    are retryable; the rest (undecodable body, redirect loop) would fail the same way again."""
    kind = NmpRetryableError if isinstance(exc, httpx.TransportError) else NmpProtocolError
    message = f"{request.method} {request.url} failed: {type(exc).__name__}: {exc}"
    error = kind(message, method=request.method, url=str(request.url))
    error.__cause__ = exc
    return error
