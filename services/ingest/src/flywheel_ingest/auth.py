"""The intake's credential, in every form a real producer sends it.

Applications send `Authorization: Bearer <token>`; Elasticsearch clients (NAT's exporter, log
shippers) send `ApiKey <token>` or HTTP basic auth, whose password is then the token (the user
name is not checked: the token alone is the secret). OTLP exporters send whatever header their
configuration names, usually the bearer form.
"""

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable

from fastapi import Header, HTTPException
from pydantic import SecretStr

_UNAUTHORIZED = 401


def authorized(header: str | None, token: SecretStr) -> bool:
    scheme, _, value = (header or "").partition(" ")
    value = value.strip()
    match scheme.lower():
        case "bearer" | "apikey":
            presented = value
        case "basic":
            presented = _basic_password(value)
        case _:
            return False
    return secrets.compare_digest(presented.encode(), token.get_secret_value().encode())


def _basic_password(value: str) -> str:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


def require_token(token: SecretStr | None) -> Callable[[str | None], Awaitable[None]]:
    """A FastAPI dependency refusing requests without the token (none configured: open)."""

    async def check(authorization: str | None = Header(None)) -> None:
        if token is not None and not authorized(authorization, token):
            raise HTTPException(
                _UNAUTHORIZED,
                "a valid token is required (Bearer, ApiKey or basic auth's password)",
                headers={"WWW-Authenticate": 'Bearer, Basic realm="flywheel"'},
            )

    return check
