"""Bearer keys, one mechanism for both the emulator's keys.

- `api_key` (NMP_EMULATOR_API_KEY), the platform's: when set, every platform route (Entity Store,
  Customizer, Evaluator, Deployment Management) and the NIM proxy want
  `Authorization: Bearer <key>`, as an NMP behind an authenticating gateway would. Open whatever
  it is: `/health/*` (probes), `/emulator/*` (the emulator's own admin, not NMP's), and the
  Data Store (`/v1/hf/*`, `/v1/datastore/*`), which clients reach with their HF token, not the
  platform key.
- `hosted_api_key` (NMP_EMULATOR_HOSTED_API_KEY): the always-served (hosted) models' chat
  completions and `/v1/embeddings` want it instead, as a separate hosted endpoint would
  (nim.py); without it they want the platform key like the rest of the NIM proxy.

A refusal is a 401 with `WWW-Authenticate: Bearer` and an error body both NIM-style
(`error.message/type/code`, as OpenAI answers) and platform-style (`detail`, as the emulator's
other errors). Keys are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac

import orjson
from fastapi import Response
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

_BEARER = "bearer "

OPEN_PREFIXES = ("/health/", "/emulator/", "/v1/hf/", "/v1/datastore/")
"""Paths the platform key does not guard (see the module's docstring)."""

KEYED_IN_ROUTE = frozenset({"/v1/chat/completions", "/v1/embeddings"})
"""Inference routes that choose their key themselves (a hosted model's or the platform's)."""


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` value; "" for anything else."""
    if not authorization.lower().startswith(_BEARER):
        return ""
    return authorization[len(_BEARER) :].strip()


def refusal(authorization: str, key: SecretStr | None) -> tuple[int, bytes] | None:
    """(401, body) when `key` is set and `authorization` does not carry it; None: allowed."""
    if key is None:
        return None
    given = bearer_token(authorization)
    # Constant time: how much of a guess matched must not show in the answer's timing.
    if given and hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        return None
    message = (
        "Incorrect API key provided."
        if given
        else "Missing API key: send Authorization: Bearer <key>."
    )
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        },
        "detail": message,
    }
    return 401, orjson.dumps(body)


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def refusal_response(authorization: str, key: SecretStr | None) -> Response | None:
    """`refusal` as a response for a route; None when the request may proceed."""
    refused = refusal(authorization, key)
    if refused is None:
        return None
    status, body = refused
    return Response(
        body, status_code=status, media_type="application/json", headers=UNAUTHORIZED_HEADERS
    )


class PlatformKeyMiddleware:
    """Wants the platform key on every guarded path (pure ASGI: the chat path is hot, and
    BaseHTTPMiddleware would cost it too much). Installed only when a key is set."""

    def __init__(self, app: ASGIApp, key: SecretStr) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path in KEYED_IN_ROUTE or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        refused = refusal(authorization, self.key)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, body = refused
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
