"""Elasticsearch-compatible endpoints: `_bulk`, single documents and `GET /`, thin.

Protocol parsing and the answers' shapes are in `producers.es_bulk`; documents go to the intake
as NeMo Agent Toolkit records (`Format.NAT`, which passes a plain Flywheel record through), and
each item's answer is ingest's own verdict on it. Every answer, errors included, is JSON in
Elasticsearch's shape with `X-Elastic-Product: Elasticsearch`, so the clients' product check
passes and their error handling can read it; that is also why the token is checked in the
handlers rather than by a router dependency (whose 401 would be FastAPI's, not Elasticsearch's).
"""

import time
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from flywheel_ingest import metrics
from flywheel_ingest.auth import Grant, IntakeGate
from flywheel_ingest.clients.raw_topic import RawTopicUnavailable
from flywheel_ingest.errors import IntakeRefused
from flywheel_ingest.handlers import media_type, read_body
from flywheel_ingest.intake import LogIntake
from flywheel_ingest.producers import Format, es_bulk
from flywheel_ingest.producers.es_bulk import BulkError
from flywheel_ingest.validation import LogRecord, Refusal

_OK = 200
_ROUTING_MAX = 256

Handler = Callable[[bytes, Grant], Awaitable[Response]]


def router(intake: LogIntake, *, gate: IntakeGate) -> APIRouter:
    routes = APIRouter(tags=["elasticsearch"])

    async def guarded(request: Request, handle: Handler) -> Response:
        """Auth, content type and body checks every write shares, failures as ES errors."""
        try:
            grant = await _authorize(request, gate)
            es_bulk.check_media_type(media_type(request))
            raw = await read_body(request, intake.max_body_bytes, intake.body_timeout_s)
            body = es_bulk.decode_body(
                raw, request.headers.get("content-encoding"), intake.max_body_bytes
            )
            return await handle(body, grant)
        except BulkError as exc:
            return _error(request, exc)
        except IntakeRefused as exc:
            return _error(
                request, BulkError(exc.status_code, "content_too_long_exception", str(exc))
            )
        except RawTopicUnavailable as exc:
            return _error(
                request,
                BulkError(
                    es_bulk.UNAVAILABLE,
                    "unavailable_shards_exception",
                    f"{exc}; nothing is stored yet and retrying the request is safe",
                ),
            )

    async def accept(
        request: Request, documents: list[bytes], grant: Grant
    ) -> list[LogRecord | Refusal]:
        if not documents:
            return []
        return await intake.accept_items(
            documents, Format.NAT, source=_routing(request), grant=grant
        )

    @routes.api_route(
        "/",
        methods=["GET", "HEAD"],
        summary="Cluster information, as Elasticsearch clients and shippers probe it",
    )
    async def info(request: Request) -> Response:
        try:
            await _authorize(request, gate)
        except BulkError as exc:
            return _error(request, exc)
        if request.method == "HEAD":
            return Response(status_code=_OK, headers=_headers(request))
        return _answer(request, _OK, es_bulk.cluster_info())

    async def bulk(request: Request, index: str | None) -> Response:
        started = time.monotonic()

        async def handle(body: bytes, grant: Grant) -> Response:
            actions = es_bulk.parse_bulk(body, index)
            verdicts = await accept(request, es_bulk.documents(actions), grant)
            took = int((time.monotonic() - started) * 1000)
            answer = es_bulk.bulk_answer(actions, verdicts, took)
            _count(answer["items"])
            return _answer(request, _OK, answer)

        return await guarded(request, handle)

    @routes.api_route(
        "/_bulk",
        methods=["POST", "PUT"],
        summary="Elasticsearch bulk NDJSON: each index/create document becomes a log record",
    )
    async def bulk_any_index(request: Request) -> Response:
        return await bulk(request, None)

    @routes.api_route(
        "/{index}/_bulk",
        methods=["POST", "PUT"],
        summary="Elasticsearch bulk NDJSON into an index (echoed; records go to Flywheel's store)",
    )
    async def bulk_into_index(request: Request, index: str) -> Response:
        return await bulk(request, index)

    async def single(request: Request, index: str) -> Response:
        async def handle(body: bytes, grant: Grant) -> Response:
            document = body.strip()
            if not document:
                raise BulkError(es_bulk.BAD_REQUEST, "parse_exception", "request body is required")
            (verdict,) = await accept(request, [document], grant)
            if isinstance(verdict, Refusal):
                metrics.ES_DOCUMENTS.labels("refused").inc()
                rejection = es_bulk.rejection(verdict)
                return _error(
                    request, BulkError(es_bulk.BAD_REQUEST, rejection["type"], rejection["reason"])
                )
            metrics.ES_DOCUMENTS.labels("accepted").inc()
            return _answer(request, es_bulk.CREATED, es_bulk.created(index, verdict))

        return await guarded(request, handle)

    @routes.post("/{index}/_doc", summary="One Elasticsearch document, as a log record")
    async def index_document(request: Request, index: str) -> Response:
        return await single(request, index)

    @routes.api_route(
        "/{index}/_doc/{doc_id}",
        methods=["PUT", "POST"],
        summary="One Elasticsearch document (its id is Flywheel's content id, not this one)",
    )
    async def index_document_with_id(request: Request, index: str, doc_id: str) -> Response:
        del doc_id  # the content decides the id, so a re-sent record is stored once
        return await single(request, index)

    @routes.api_route(
        "/{index}/_create/{doc_id}",
        methods=["PUT", "POST"],
        summary="One Elasticsearch document, created (its id is Flywheel's content id)",
    )
    async def create_document(request: Request, index: str, doc_id: str) -> Response:
        del doc_id
        return await single(request, index)

    return routes


async def _authorize(request: Request, gate: IntakeGate) -> Grant:
    try:
        return await gate.admit(request, request.headers.get("authorization"))
    except HTTPException as exc:
        if exc.status_code == es_bulk.TOO_MANY_REQUESTS:
            # Elasticsearch's own answer when it sheds load: clients and shippers back off.
            raise BulkError(
                es_bulk.TOO_MANY_REQUESTS,
                "es_rejected_execution_exception",
                str(exc.detail),
                headers=exc.headers,
            ) from exc
        raise BulkError(
            es_bulk.UNAUTHORIZED,
            "security_exception",
            f"missing or wrong credentials for REST request [{request.url.path}]: {exc.detail}",
        ) from exc


def _routing(request: Request) -> str | None:
    """Elasticsearch's `routing` parameter keys the lines, keeping one route's in order."""
    routing = request.query_params.get("routing")
    return routing[:_ROUTING_MAX] if routing else None


def _headers(request: Request, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        es_bulk.PRODUCT_HEADER: es_bulk.PRODUCT,
        "content-type": es_bulk.answer_type(request.headers.get("accept")),
        **(extra or {}),
    }


def _answer(request: Request, status: int, body: object) -> JSONResponse:
    return JSONResponse(body, status, headers=_headers(request))


def _error(request: Request, error: BulkError) -> JSONResponse:
    extra = (
        {"WWW-Authenticate": 'Basic realm="flywheel", ApiKey, Bearer'}
        if error.status == es_bulk.UNAUTHORIZED
        else error.headers
    )
    return JSONResponse(error.body(), error.status, headers=_headers(request, extra))


def _count(items: list[dict[str, dict[str, object]]]) -> None:
    for item in items:
        ((verb, result),) = item.items()
        if verb in ("delete", "update"):
            metrics.ES_DOCUMENTS.labels("unsupported").inc()
        elif result["status"] == es_bulk.CREATED:
            metrics.ES_DOCUMENTS.labels("accepted").inc()
        else:
            metrics.ES_DOCUMENTS.labels("refused").inc()
