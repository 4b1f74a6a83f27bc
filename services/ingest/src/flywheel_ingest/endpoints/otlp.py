"""`POST /v1/traces`: the OTLP/HTTP trace receiver, thin.

Decoding and the answers' shapes are in `producers.otlp.decode`; each LLM span goes to the
intake as an `otlp-span` item, and the answer counts the spans ingest will reject
(`partial_success`), as the OTLP/HTTP specification asks. Failures answer a `google.rpc.Status`
in the request's encoding: 400 for a body that is not an export request (not retryable), 413
for one over the intake's limit, 503 with `Retry-After` while Kafka does not acknowledge
(exporters retry those). Spans that record no model call are skipped, not rejected.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from flywheel_ingest import metrics
from flywheel_ingest.auth import Grant, IntakeGate
from flywheel_ingest.clients.raw_topic import RawTopicUnavailable
from flywheel_ingest.compression import UnsupportedEncoding
from flywheel_ingest.errors import IntakeRefused
from flywheel_ingest.handlers import media_type, read_body
from flywheel_ingest.intake import LogIntake
from flywheel_ingest.producers import Format
from flywheel_ingest.producers.otlp.decode import (
    INVALID_ARGUMENT,
    MEDIA_TYPES,
    RESOURCE_EXHAUSTED,
    UNAVAILABLE,
    Encoding,
    TooLarge,
    Undecodable,
    batches,
    decode_request,
    decompress,
    export_answer,
    span_items,
    status_answer,
)
from flywheel_ingest.validation import LogRecord, Refusal

_OK = 200
_BAD_REQUEST = 400
_PAYLOAD_TOO_LARGE = 413
_UNSUPPORTED_MEDIA_TYPE = 415
_UNAVAILABLE = 503
RETRY_AFTER_S = 5
"""How long an exporter is asked to wait before retrying while Kafka is away."""


def router(intake: LogIntake, *, gate: IntakeGate) -> APIRouter:
    routes = APIRouter(tags=["otlp"])

    @routes.post(
        "/v1/traces",
        summary="OTLP/HTTP trace export (protobuf or JSON): LLM spans become log records",
        response_class=Response,
    )
    async def export_traces(
        request: Request, grant: Annotated[Grant, Depends(gate.admit)]
    ) -> Response:
        kind = media_type(request)
        encoding = MEDIA_TYPES.get(kind or "")
        if encoding is None:
            return JSONResponse(
                {
                    "detail": f"Content-Type {kind!r} is not read here; send "
                    "application/x-protobuf or application/json (OTLP/HTTP)"
                },
                _UNSUPPORTED_MEDIA_TYPE,
            )
        limit = intake.max_body_bytes
        try:
            raw = await read_body(request, limit, intake.body_timeout_s)
            body = decompress(raw, request.headers.get("content-encoding"), limit)
            export = decode_request(body, encoding)
        except UnsupportedEncoding as exc:
            return _status(_UNSUPPORTED_MEDIA_TYPE, INVALID_ARGUMENT, str(exc), encoding)
        except (TooLarge, IntakeRefused) as exc:
            return _status(_PAYLOAD_TOO_LARGE, RESOURCE_EXHAUSTED, str(exc), encoding)
        except Undecodable as exc:
            return _status(_BAD_REQUEST, INVALID_ARGUMENT, str(exc), encoding)
        spans = span_items(export)
        metrics.OTLP_SPANS.labels("skipped").inc(spans.skipped)
        try:
            intake.refuse_too_many(len(spans.items))  # all the request's batches together
        except IntakeRefused as exc:
            return _status(exc.status_code, RESOURCE_EXHAUSTED, str(exc), encoding)
        if not spans.items:
            return _answer(_OK, export_answer([], encoding), encoding)
        verdicts: list[LogRecord | Refusal] = []
        try:
            for batch in batches(spans.items, limit):
                verdicts += await intake.accept_items(
                    batch, Format.OTLP_SPAN, source=spans.source, grant=grant
                )
                metrics.OTLP_SPANS.labels("forwarded").inc(len(batch))
        except IntakeRefused as exc:
            return _status(exc.status_code, RESOURCE_EXHAUSTED, str(exc), encoding)
        except RawTopicUnavailable as exc:
            return _status(
                _UNAVAILABLE,
                UNAVAILABLE,
                f"{exc}; retrying the export is safe",
                encoding,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return _answer(_OK, export_answer(verdicts, encoding), encoding)

    return routes


def _status(
    http_status: int,
    code: int,
    message: str,
    encoding: Encoding,
    headers: dict[str, str] | None = None,
) -> Response:
    return _answer(http_status, status_answer(code, message, encoding), encoding, headers)


def _answer(
    http_status: int, body: bytes, encoding: Encoding, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, http_status, headers=headers, media_type=encoding.value)
