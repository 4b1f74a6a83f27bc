"""HTTP handlers, thin: `POST /v1/logs` (NDJSON) hands the body to the intake."""

import secrets

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from flywheel_ingest.clients.raw_topic import RawTopicUnavailable
from flywheel_ingest.errors import IntakeRefused
from flywheel_ingest.intake import LogIntake

_ACCEPTED = 202
_UNAUTHORIZED = 401
_UNAVAILABLE = 503


def intake_router(intake: LogIntake, *, token: SecretStr | None) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/logs",
        status_code=_ACCEPTED,
        summary="Put NDJSON log records on logs.raw (for applications without a log shipper)",
    )
    async def post_logs(
        request: Request,
        source: str | None = Query(
            None, max_length=256, description="Keys the lines, keeping one source's in order."
        ),
        authorization: str | None = Header(None),
    ) -> JSONResponse:
        if token is not None and not _authorized(authorization, token):
            return JSONResponse({"detail": "a valid bearer token is required"}, _UNAUTHORIZED)
        body = await _read_at_most(request, intake.max_body_bytes + 1)
        try:
            accepted = await intake.accept(body, source=source)
        except IntakeRefused as exc:
            return JSONResponse({"detail": str(exc)}, exc.status_code)
        except RawTopicUnavailable as exc:
            return JSONResponse({"detail": f"{exc}; retrying the request is safe"}, _UNAVAILABLE)
        return JSONResponse({"accepted": accepted.lines, "blank": accepted.blank}, _ACCEPTED)

    return router


def _authorized(header: str | None, token: SecretStr) -> bool:
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        value.strip().encode(), token.get_secret_value().encode()
    )


async def _read_at_most(request: Request, limit: int) -> bytes:
    """The body, read no further than `limit` bytes (enough for the intake to refuse it)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)
