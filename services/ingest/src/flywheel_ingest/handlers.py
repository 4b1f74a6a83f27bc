"""HTTP handlers, thin: `POST /v1/logs` (NDJSON) hands the body to the intake."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from flywheel_ingest.auth import Grant, IntakeGate
from flywheel_ingest.clients.raw_topic import RawTopicUnavailable
from flywheel_ingest.errors import IntakeRefused
from flywheel_ingest.intake import LogIntake

_ACCEPTED = 202
_REQUEST_TIMEOUT = 408
_PAYLOAD_TOO_LARGE = 413
_UNSUPPORTED_MEDIA_TYPE = 415
_UNAVAILABLE = 503

NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/json",
        "text/plain",
    }
)
"""What `/v1/logs` reads. A request without a Content-Type is read as NDJSON too."""


def intake_router(intake: LogIntake, *, gate: IntakeGate) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/logs",
        status_code=_ACCEPTED,
        summary="Put NDJSON log records on logs.raw (for applications without a log shipper)",
    )
    async def post_logs(
        request: Request,
        grant: Annotated[Grant, Depends(gate.admit)],
        source: str | None = Query(
            None, max_length=256, description="Keys the lines, keeping one source's in order."
        ),
    ) -> JSONResponse:
        unsupported = unsupported_media_type(request, NDJSON_TYPES)
        if unsupported is not None:
            return unsupported
        try:
            body = await read_body(request, intake.max_body_bytes, intake.body_timeout_s)
            accepted = await intake.accept(body, source=source, grant=grant)
        except IntakeRefused as exc:
            return JSONResponse({"detail": str(exc)}, exc.status_code)
        except RawTopicUnavailable as exc:
            return JSONResponse({"detail": f"{exc}; retrying the request is safe"}, _UNAVAILABLE)
        return JSONResponse({"accepted": accepted.lines, "blank": accepted.blank}, _ACCEPTED)

    return router


def media_type(request: Request) -> str | None:
    """The request's media type, lower-cased and without parameters; None when not given."""
    header = request.headers.get("content-type")
    if header is None or not header.strip():
        return None
    return header.split(";", 1)[0].strip().lower()


def unsupported_media_type(request: Request, accepted: frozenset[str]) -> JSONResponse | None:
    """A 415 answer naming what is read, before the body is read; None when the type is fine."""
    kind = media_type(request)
    if kind is None or kind in accepted:
        return None
    return JSONResponse(
        {
            "detail": f"Content-Type {kind!r} is not read here; send one of "
            f"{', '.join(sorted(accepted))}"
        },
        _UNSUPPORTED_MEDIA_TYPE,
    )


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, or IntakeRefused (413) once it is known to exceed `limit` bytes: from its
    `Content-Length` before anything is read, else while it streams in, so no more than `limit`
    bytes and one chunk are ever held (a chunked body declares no length). A body still arriving
    after `timeout_s` is refused with 408: a client trickling bytes would otherwise hold a
    connection, and its memory, for as long as it likes."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise _too_large(limit)
    except TimeoutError:
        raise IntakeRefused(
            f"the body did not arrive within {timeout_s:g}s", status_code=_REQUEST_TIMEOUT
        ) from None
    return bytes(body)


def _too_large(limit: int) -> IntakeRefused:
    return IntakeRefused(f"the body exceeds {limit} bytes", status_code=_PAYLOAD_TOO_LARGE)
