"""`POST /v1/relay/events`: NeMo Relay's events (its JSONL file export, or its ndjson stream
sink) to one item per LLM call on the source topic (see `producers.relay`)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from flywheel_ingest import metrics
from flywheel_ingest.auth import Grant, IntakeGate
from flywheel_ingest.clients.raw_topic import RawTopicUnavailable
from flywheel_ingest.errors import IntakeRefused
from flywheel_ingest.handlers import read_body, unsupported_media_type
from flywheel_ingest.intake import LogIntake
from flywheel_ingest.producers import Format
from flywheel_ingest.producers.relay import answer, items_of

_ACCEPTED = 202
_UNAVAILABLE = 503

EVENT_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/json",
    }
)
"""Relay's stream sinks send `application/x-ndjson`; a request without a Content-Type is read
the same way."""


def router(intake: LogIntake, *, gate: IntakeGate) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/relay/events",
        status_code=_ACCEPTED,
        summary="NeMo Relay events (JSONL export or ndjson stream): each LLM call becomes a record",
    )
    async def post_events(
        request: Request,
        grant: Annotated[Grant, Depends(gate.admit)],
        source: str | None = Query(
            None, max_length=256, description="Keys the calls, keeping one source's in order."
        ),
    ) -> JSONResponse:
        unsupported = unsupported_media_type(request, EVENT_TYPES)
        if unsupported is not None:
            return unsupported
        try:
            body = await read_body(request, intake.max_body_bytes, intake.body_timeout_s)
            events = items_of(body)
            verdicts = await intake.accept_items(
                events.items, Format.RELAY_CALL, source=source, grant=grant
            )
        except IntakeRefused as exc:
            return JSONResponse({"detail": str(exc)}, exc.status_code)
        except RawTopicUnavailable as exc:
            return JSONResponse({"detail": f"{exc}; retrying the request is safe"}, _UNAVAILABLE)
        paired = len(events.items) - events.unpaired - events.unreadable
        metrics.RELAY_ITEMS.labels("call").inc(paired)
        metrics.RELAY_ITEMS.labels("unpaired").inc(events.unpaired)
        metrics.RELAY_ITEMS.labels("other").inc(events.ignored)
        metrics.RELAY_ITEMS.labels("unreadable").inc(events.unreadable)
        return JSONResponse(answer(events, verdicts), _ACCEPTED)

    return router
