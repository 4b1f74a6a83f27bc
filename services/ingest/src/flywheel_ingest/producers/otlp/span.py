"""The one span an `otlp-span` item holds, with its OTLP/JSON attribute values decoded.

Exporters write OTLP/JSON in camelCase or snake_case and wrap every value in an `AnyValue`;
decoding the span once, up front, lets each convention's reader see plain values only.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.producers.formats import Untranslatable
from flywheel_ingest.producers.otlp.values import integer


@dataclass(frozen=True, slots=True)
class OtlpSpan:
    """The parts of an item a record is made of, attribute values decoded."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    events: tuple[tuple[str, dict[str, Any]], ...]
    status: str

    def attribute(self, name: str) -> Any:
        return self.attributes.get(name)


def read_span(item: Mapping[str, Any]) -> OtlpSpan:
    """The one span of an item (a ResourceSpans with one scope and one span)."""
    scopes = _field(item, "scopeSpans", "scope_spans")
    if not isinstance(scopes, list) or len(scopes) != 1 or not isinstance(scopes[0], dict):
        _wrong("an otlp-span item is a ResourceSpans whose scopeSpans holds one scope")
    spans = _field(scopes[0], "spans")
    if not isinstance(spans, list) or len(spans) != 1 or not isinstance(spans[0], dict):
        _wrong("an otlp-span item's scopeSpans[0].spans holds exactly one span")
    span: dict[str, Any] = spans[0]
    resource = _field(item, "resource")
    scope = _field(scopes[0], "scope")
    status = _field(span, "status")
    events = _field(span, "events")
    return OtlpSpan(
        name=str(span.get("name") or ""),
        trace_id=_text(_field(span, "traceId", "trace_id")),
        span_id=_text(_field(span, "spanId", "span_id")),
        parent_span_id=_text(_field(span, "parentSpanId", "parent_span_id")),
        start_ns=_nanoseconds(_field(span, "startTimeUnixNano", "start_time_unix_nano")),
        attributes=attributes(_field(span, "attributes")),
        resource=attributes(_field(resource, "attributes") if isinstance(resource, dict) else []),
        scope=_text(scope.get("name")) if isinstance(scope, dict) else "",
        events=tuple(
            (_text(event.get("name")), attributes(_field(event, "attributes")))
            for event in (events if isinstance(events, list) else [])
            if isinstance(event, dict)
        ),
        status=_status(status),
    )


def attributes(key_values: object) -> dict[str, Any]:
    """OTLP/JSON `KeyValue`s as a dict of plain values (the last of a repeated key wins)."""
    if not isinstance(key_values, list):
        return {}
    decoded: dict[str, Any] = {}
    for key_value in key_values:
        if isinstance(key_value, dict) and isinstance(key_value.get("key"), str):
            decoded[key_value["key"]] = any_value(key_value.get("value"))
    return decoded


def any_value(value: object) -> Any:
    """An OTLP/JSON `AnyValue` as a plain value (bytes stay base64 text; an empty one is None)."""
    if not isinstance(value, dict):
        return None
    for key, inner in value.items():
        match key:
            case "stringValue" | "string_value" | "bytesValue" | "bytes_value":
                return inner if isinstance(inner, str) else None
            case "boolValue" | "bool_value":
                return inner if isinstance(inner, bool) else None
            case "intValue" | "int_value":
                return integer(inner)
            case "doubleValue" | "double_value":
                return _double(inner)
            case "arrayValue" | "array_value":
                items = inner.get("values") if isinstance(inner, dict) else None
                return [any_value(entry) for entry in items] if isinstance(items, list) else []
            case "kvlistValue" | "kvlist_value":
                return attributes(inner.get("values") if isinstance(inner, dict) else None)
    return None


def incomplete(span: OtlpSpan, what: str) -> NoReturn:
    """Refuse an LLM span that lacks part of the call (its request messages or its output)."""
    raise Untranslatable(RejectReason.INCOMPLETE_CALL, f"LLM span {span.name!r} {what}")


def _field(node: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in node:
            return node[name]
    return None


def _status(status: object) -> str:
    if not isinstance(status, dict):
        return ""
    code = status.get("code")
    message = _text(status.get("message"))
    if code in (2, "2", "STATUS_CODE_ERROR"):
        return f"ERROR {message!r}" if message else "ERROR"
    return ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _double(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _nanoseconds(value: Any) -> int:
    nanoseconds = integer(value)
    return nanoseconds if nanoseconds is not None else 0


def _wrong(message: str) -> NoReturn:
    raise Untranslatable(RejectReason.WRONG_TYPE, message)
