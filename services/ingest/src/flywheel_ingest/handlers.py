"""HTTP handlers, thin: `POST /v1/logs` (NDJSON) hands the body to the intake."""

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from flywheel_ingest.auth import require_token
from flywheel_ingest.clients.raw_topic import RawTopicUnavailable
from flywheel_ingest.errors import IntakeRefused
from flywheel_ingest.intake import LogIntake

_ACCEPTED = 202
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


def intake_router(intake: LogIntake, *, token: SecretStr | None) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_token(token))])

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
    ) -> JSONResponse:
        unsupported = unsupported_media_type(request, NDJSON_TYPES)
        if unsupported is not None:
            return unsupported
        body = await read_at_most(request, intake.max_body_bytes + 1)
        try:
            accepted = await intake.accept(body, source=source)
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


async def read_at_most(request: Request, limit: int) -> bytes:
    """The body, read no further than `limit` bytes (enough for the intake to refuse it)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)
