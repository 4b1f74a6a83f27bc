"""When a call happened and where it was recorded: the record's timestamp and metadata.

The trace and span ids (and the names around them) are kept so that a record can be traced
back to the span it was made from, in the producer's own tracing backend.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.producers.formats import Untranslatable
from flywheel_ingest.producers.otlp.span import OtlpSpan
from flywheel_ingest.producers.otlp.values import first_text

PRODUCER = "otlp"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SHOWN_DIGITS = 30


def timestamp(span: OtlpSpan) -> str:
    if span.start_ns <= 0:
        raise Untranslatable(
            RejectReason.MISSING_FIELD, f"span {span.name!r} has no startTimeUnixNano"
        )
    try:
        instant = _EPOCH + timedelta(microseconds=span.start_ns // 1000)
    except OverflowError:
        nanoseconds = str(span.start_ns)
        shown = (
            nanoseconds
            if len(nanoseconds) <= _SHOWN_DIGITS
            else f"{nanoseconds[:_SHOWN_DIGITS]}... ({len(nanoseconds)} digits)"
        )
        raise Untranslatable(
            RejectReason.INVALID_TIMESTAMP,
            f"span {span.name!r} has a startTimeUnixNano past the year 9999: {shown}",
        ) from None
    return instant.isoformat(timespec="microseconds").replace("+00:00", "Z")


def record_metadata(span: OtlpSpan, convention: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "producer": PRODUCER,
        "convention": convention,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
    }
    optional = {
        "parent_span_id": span.parent_span_id,
        "span_name": span.name,
        "service_name": first_text(span.resource.get("service.name")),
        "instrumentation_scope": span.scope,
        "session_id": first_text(
            span.attribute("session.id"),
            span.attribute("gen_ai.conversation.id"),
        ),
        "agent_name": first_text(span.attribute("gen_ai.agent.name")),
        "nat_function": first_text(span.attribute("nat.function.name")),
        "nat_workflow_run_id": first_text(span.attribute("nat.workflow.run_id")),
    }
    metadata.update({name: value for name, value in optional.items() if value})
    return metadata
