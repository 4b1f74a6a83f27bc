"""OTLP/HTTP traces: an export request's body to one item per LLM span, and the answers.

A body is an `ExportTraceServiceRequest`, in protobuf or in OTLP/JSON (whose trace and span ids
are hex, not the base64 of protobuf's JSON mapping; either camelCase or snake_case keys),
possibly gzip-compressed. Only LLM spans become items (see `is_llm_span`); workflow, agent,
tool and HTTP spans around them are skipped, which is no rejection.

An item is the span as OTLP/JSON, inside its resource and instrumentation scope: a
`ResourceSpans` holding one scope and one span. It is complete on its own (the resource carries
`service.name`, often the workload), and it stays valid OTLP/JSON, so a rejected item in
`logs.rejected` can be read, or re-sent to any OTLP receiver, as it is.
"""

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

import orjson
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
)
from google.protobuf.message import (
    DecodeError,
    Message,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from flywheel_ingest.compression import (
    CorruptBody,
    InflatedTooLarge,
    inflated,
)
from flywheel_ingest.validation import LogRecord, Refusal


class Encoding(StrEnum):
    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


MEDIA_TYPES: dict[str, Encoding] = {
    "application/x-protobuf": Encoding.PROTOBUF,
    "application/protobuf": Encoding.PROTOBUF,
    "application/json": Encoding.JSON,
}
"""The request media types read, and the encoding each stands for (answers use the same)."""

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
"""`gen_ai.operation.name` values of a model call (not `execute_tool`, `invoke_agent`,
`create_agent` or `embeddings`)."""

_GEN_AI_MODEL_MARKERS = ("gen_ai.system", "gen_ai.provider.name", "gen_ai.request.model")
_SUMMARY_REASONS = 5
_QUOTED_MESSAGE = 200


class Undecodable(ValueError):
    """The body is not an export request (answer 400)."""


class TooLarge(ValueError):
    """The body, once decompressed, exceeds the intake's limit (answer 413)."""


# -- the body --------------------------------------------------------------------------------


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as sent before compression, never inflated past `limit` bytes (TooLarge)."""
    try:
        return inflated(body, content_encoding, limit)
    except InflatedTooLarge as exc:
        raise TooLarge(str(exc)) from None
    except CorruptBody as exc:
        raise Undecodable(str(exc)) from None


def decode_request(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """The export request a body holds; Undecodable with the reason otherwise."""
    request = ExportTraceServiceRequest()
    if encoding is Encoding.PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise Undecodable(f"not a protobuf ExportTraceServiceRequest: {exc}") from None
        return request
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Undecodable(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise Undecodable("an OTLP/JSON export request must be a JSON object")
    _ids_to_base64(document)
    try:
        # OTLP: a receiver ignores fields it does not know (newer producers add some).
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise Undecodable(f"not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None
    return request


_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON ids are hex; protobuf's JSON mapping (what ParseDict reads) wants base64."""
    for resource_spans in _objects(document, "resourceSpans", "resource_spans"):
        for scope_spans in _objects(resource_spans, "scopeSpans", "scope_spans"):
            for span in _objects(scope_spans, "spans"):
                _convert_ids(span)
                for link in _objects(span, "links"):
                    _convert_ids(link)


def _objects(parent: dict[str, Any], *names: str) -> Iterable[dict[str, Any]]:
    for name in names:
        children = parent.get(name)
        if isinstance(children, list):
            yield from (child for child in children if isinstance(child, dict))


def _convert_ids(node: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        value = node.get(name)
        if not isinstance(value, str):
            continue  # ParseDict reports a wrong type
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise Undecodable(f"{name} {value[:40]!r} is not hex (OTLP/JSON ids are hex)") from None
        node[name] = base64.b64encode(raw).decode()


# -- the spans -------------------------------------------------------------------------------


@dataclass
class SpanItems:
    """What an export request holds for Flywheel: an item per LLM span, and how many spans
    were skipped as not being LLM calls."""

    items: list[bytes] = field(default_factory=list)
    skipped: int = 0
    source: str | None = None
    """The `service.name` of the first resource with an LLM span: keys the items on the topic."""


def span_items(request: ExportTraceServiceRequest) -> SpanItems:
    found = SpanItems()
    for resource_spans in request.resource_spans:
        resource = json_format.MessageToDict(resource_spans.resource, use_integers_for_enums=True)
        service = _string_attributes(resource_spans.resource.attributes).get("service.name")
        for scope_spans in resource_spans.scope_spans:
            scope = json_format.MessageToDict(scope_spans.scope, use_integers_for_enums=True)
            for span in scope_spans.spans:
                if not is_llm_span(span.attributes):
                    found.skipped += 1
                    continue
                if found.source is None and service:
                    found.source = service
                item = {
                    "resource": resource,
                    "scopeSpans": [{"scope": scope, "spans": [span_json(span)]}],
                }
                found.items.append(orjson.dumps(item))
    return found


def batches(items: Sequence[bytes], limit: int) -> list[list[bytes]]:
    """The items in order, in runs of at most `limit` bytes each (an item over it alone): an
    item's OTLP/JSON is larger than the span's protobuf, so one export within the body limit
    may need several intake calls. A retried export repeats items already forwarded, which is
    harmless: an item always makes the same record, stored under the same id."""
    runs: list[list[bytes]] = []
    size = limit + 1
    for item in items:
        if size + len(item) > limit:
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += len(item)
    return runs


def span_json(span: Span) -> dict[str, Any]:
    """The span as OTLP/JSON: hex ids, integer enums (protobuf's JSON mapping, ids aside)."""
    document: dict[str, Any] = json_format.MessageToDict(span, use_integers_for_enums=True)
    for name, value in (
        ("traceId", span.trace_id),
        ("spanId", span.span_id),
        ("parentSpanId", span.parent_span_id),
    ):
        if value:
            document[name] = value.hex()
    for link, link_document in zip(span.links, document.get("links", ()), strict=False):
        link_document["traceId"] = link.trace_id.hex()
        link_document["spanId"] = link.span_id.hex()
    return document


def is_llm_span(attributes: Sequence[KeyValue]) -> bool:
    """Whether a span records a model call, by the conventions' own markers.

    A span that names its kind (`gen_ai.operation.name`, OpenInference's
    `openinference.span.kind`, NeMo Agent Toolkit's `nat.span.kind` / `nat.event_type`, NeMo
    Relay's `nemo_relay.scope_type`) is an
    LLM span when one of them says so: an `execute_tool` or `invoke_agent` span carrying
    `gen_ai.request.model` is not. A span naming no kind is one when it carries
    `gen_ai.system`, `gen_ai.provider.name` or `gen_ai.request.model`.
    """
    strings = _string_attributes(attributes)
    verdicts: list[bool] = []
    if (operation := strings.get("gen_ai.operation.name")) is not None:
        verdicts.append(operation.lower() in LLM_OPERATIONS)
    if (kind := strings.get("openinference.span.kind")) is not None:
        verdicts.append(kind.upper() == "LLM")
    if (nat_kind := strings.get("nat.span.kind")) is not None:
        verdicts.append(nat_kind.upper() == "LLM")
    if (event_type := strings.get("nat.event_type")) is not None:
        verdicts.append(event_type.upper().startswith("LLM_"))
    if (relay_scope := strings.get("nemo_relay.scope_type")) is not None:
        verdicts.append(relay_scope.lower() == "llm")
    if verdicts:
        return any(verdicts)
    return any(attribute.key in _GEN_AI_MODEL_MARKERS for attribute in attributes)


def _string_attributes(attributes: Iterable[KeyValue]) -> dict[str, str]:
    return {
        attribute.key: attribute.value.string_value
        for attribute in attributes
        if attribute.value.WhichOneof("value") == "string_value"
    }


# -- the answers -----------------------------------------------------------------------------


def export_answer(verdicts: Sequence[LogRecord | Refusal], encoding: Encoding) -> bytes:
    """The `ExportTraceServiceResponse`: empty when every span is taken, else a partial success
    counting the refused spans and summarising why."""
    refusals = [verdict for verdict in verdicts if isinstance(verdict, Refusal)]
    response = ExportTraceServiceResponse()
    if refusals:
        response.partial_success.rejected_spans = len(refusals)
        response.partial_success.error_message = rejection_summary(refusals, len(verdicts))
    return _encode(response, encoding)


def rejection_summary(refusals: Sequence[Refusal], llm_spans: int) -> str:
    """One line: how many LLM spans were refused, per reason, with the first message of each."""
    by_reason: dict[str, list[Refusal]] = {}
    for refusal in refusals:
        by_reason.setdefault(refusal.reason.value, []).append(refusal)
    parts = [
        f"{reason} x{len(group)} ({_clip(group[0].message)})"
        for reason, group in list(by_reason.items())[:_SUMMARY_REASONS]
    ]
    more = len(by_reason) - _SUMMARY_REASONS
    tail = f"; and {more} more reason(s)" if more > 0 else ""
    return (
        f"{len(refusals)} of {llm_spans} LLM span(s) rejected, "
        f"kept in logs.rejected: {'; '.join(parts)}{tail}"
    )


def status_answer(code: int, message: str, encoding: Encoding) -> bytes:
    """A `google.rpc.Status` (gRPC `code`, message), the body OTLP/HTTP gives a failure."""
    if encoding is Encoding.JSON:
        return orjson.dumps({"code": code, "message": message})
    status = _status_class()(code=code, message=message)
    encoded: bytes = status.SerializeToString()
    return encoded


INVALID_ARGUMENT = 3
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14
"""gRPC codes of the `Status` answers: 400, 413, 503."""


@cache
def _status_class() -> type[Message]:
    """google.rpc.Status (code = 1, message = 2; details left out), built in a pool of its own
    so it never meets googleapis-common-protos' copy in the default one."""
    file = descriptor_pb2.FileDescriptorProto(
        name="flywheel_ingest/google_rpc_status.proto", package="google.rpc", syntax="proto3"
    )
    status = file.message_type.add(name="Status")
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    status.field.add(
        name="code", number=1, label=optional, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32
    )
    status.field.add(
        name="message",
        number=2,
        label=optional,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    status_class: type[Message] = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("google.rpc.Status")
    )
    return status_class


def _encode(message: Message, encoding: Encoding) -> bytes:
    if encoding is Encoding.JSON:
        return orjson.dumps(json_format.MessageToDict(message))
    encoded: bytes = message.SerializeToString()
    return encoded


def _clip(text: str) -> str:
    return text if len(text) <= _QUOTED_MESSAGE else f"{text[: _QUOTED_MESSAGE - 3]}..."
