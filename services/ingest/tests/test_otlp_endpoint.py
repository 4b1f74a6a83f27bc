"""POST /v1/traces: OTLP/HTTP bodies (protobuf, OTLP/JSON, gzip) to one item per LLM span, and
the answers the OTLP/HTTP specification asks for (partial success, Status, 4xx/503)."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from prometheus_client import REGISTRY
from pydantic import SecretStr

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.compression import UnsupportedEncoding
from flywheel_ingest.endpoints import otlp
from flywheel_ingest.producers import Format
from flywheel_ingest.producers.otlp.decode import (
    Encoding,
    TooLarge,
    Undecodable,
    batches,
    decode_request,
    decompress,
    export_answer,
    is_llm_span,
    span_items,
    status_answer,
)
from flywheel_ingest.testing import FakeRawTopic, intake_client
from flywheel_ingest.validation import LogRecord, Refusal

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "producers" / "otlp"
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


def attribute(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(name: str, span_id: int, **attributes: str | int) -> Span:
    return Span(
        trace_id=TRACE_ID,
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=(1).to_bytes(8, "big"),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_767_225_600_000_000_000,
        end_time_unix_nano=1_767_225_601_000_000_000,
        attributes=[attribute(key.replace("__", "."), value) for key, value in attributes.items()],
    )


def export(*spans: Span, service: str = "shop-assistant") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[
                        attribute("service.name", service),
                        attribute("service.namespace", "acme"),
                    ]
                ),
                scope_spans=[
                    ScopeSpans(scope=InstrumentationScope(name="my.instrumentation"), spans=spans)
                ],
            )
        ]
    )


INPUT = orjson.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]).decode()
OUTPUT = orjson.dumps(
    [{"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text", "content": "Yo"}]}]
).decode()


def llm_span(span_id: int) -> Span:
    return span(
        "chat gpt-4o",
        span_id,
        gen_ai__operation__name="chat",
        gen_ai__request__model="gpt-4o",
        gen_ai__input__messages=INPUT,
        gen_ai__output__messages=OUTPUT,
    )


LLM = llm_span(2)
NO_OUTPUT = span("chat gpt-4o", 5, gen_ai__operation__name="chat", gen_ai__input__messages=INPUT)
TOOL = span("execute_tool get_weather", 3, gen_ai__operation__name="execute_tool")
HTTP = span("GET /weather", 4, http__request__method="GET")
MIXED = export(LLM, TOOL, HTTP)


# -- decoding --------------------------------------------------------------------------------


def test_a_protobuf_export_is_decoded_to_one_item_per_llm_span() -> None:
    found = span_items(decode_request(MIXED.SerializeToString(), Encoding.PROTOBUF))
    assert (len(found.items), found.skipped, found.source) == (1, 2, "shop-assistant")
    item = orjson.loads(found.items[0])
    assert item["resource"]["attributes"][0] == {
        "key": "service.name",
        "value": {"stringValue": "shop-assistant"},
    }
    (scope,) = item["scopeSpans"]
    assert scope["scope"] == {"name": "my.instrumentation"}
    (one,) = scope["spans"]
    # OTLP/JSON: hex ids, integer enums.
    assert (one["traceId"], one["spanId"], one["parentSpanId"]) == (
        "5b8efff798038103d269b633813fc60c",
        "0000000000000002",
        "0000000000000001",
    )
    assert one["kind"] == 3
    assert one["startTimeUnixNano"] == "1767225600000000000"


def otlp_json(request: ExportTraceServiceRequest, *, snake_case: bool) -> bytes:
    """The request as OTLP/JSON: protobuf's JSON mapping with hex ids."""
    document: dict[str, Any] = json_format.MessageToDict(
        request, preserving_proto_field_name=snake_case, use_integers_for_enums=True
    )
    spans_key, scope_key, resource_key = (
        ("spans", "scope_spans", "resource_spans")
        if snake_case
        else ("spans", "scopeSpans", "resourceSpans")
    )
    originals = [s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
    converted = [s for r in document[resource_key] for ss in r[scope_key] for s in ss[spans_key]]
    for original, span_json in zip(originals, converted, strict=True):
        for name, raw in (("trace_id", original.trace_id), ("span_id", original.span_id)):
            span_json[name if snake_case else name.replace("_id", "Id")] = raw.hex()
        parent = "parent_span_id" if snake_case else "parentSpanId"
        span_json[parent] = original.parent_span_id.hex()
    return orjson.dumps(document)


@pytest.mark.parametrize("snake_case", [False, True])
def test_otlp_json_in_either_key_case_decodes_to_the_same_items_as_protobuf(
    snake_case: bool,
) -> None:
    from_protobuf = span_items(decode_request(MIXED.SerializeToString(), Encoding.PROTOBUF))
    from_json = span_items(decode_request(otlp_json(MIXED, snake_case=snake_case), Encoding.JSON))
    assert from_json == from_protobuf


def test_a_real_otlp_json_export_decodes_ignoring_fields_this_proto_lacks() -> None:
    line = (FIXTURES / "relay" / "relay-gen_ai.jsonl").read_bytes().splitlines()[0]
    document = orjson.loads(line)
    document["resourceSpans"][0]["resource"]["aFieldFromTheFuture"] = 1
    found = span_items(decode_request(orjson.dumps(document), Encoding.JSON))
    assert len(found.items) == 5
    assert found.source == "relay-weather-agent"


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        (b"\xff\xff\xff", Encoding.PROTOBUF, "not a protobuf ExportTraceServiceRequest"),
        (b"{not json", Encoding.JSON, "not valid JSON"),
        (b"[]", Encoding.JSON, "an OTLP/JSON export request must be a JSON object"),
        (b'{"resourceSpans": 3}', Encoding.JSON, "not an OTLP/JSON ExportTraceServiceRequest"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "W47/95gDgQPSabYzgT/GDA=="}]}]}]}',
            Encoding.JSON,
            "traceId 'W47/95gDgQPSabYzgT/GDA==' is not hex",
        ),
    ],
)
def test_a_body_that_is_not_an_export_request_is_undecodable(
    body: bytes, encoding: Encoding, message: str
) -> None:
    with pytest.raises(Undecodable, match=message):
        decode_request(body, encoding)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """A protobuf field of wire type 2, encoded by hand (the Python API refuses deep values)."""
    size, varint = len(payload), b""
    while size > 0x7F:
        varint += bytes([size & 0x7F | 0x80])
        size >>= 7
    return bytes([field_number << 3 | 2]) + varint + bytes([size]) + payload


def test_attribute_values_nested_past_the_decoders_depth_are_undecodable() -> None:
    value = length_delimited(1, b"x")  # AnyValue.string_value
    for _ in range(200):
        value = length_delimited(5, length_delimited(1, value))  # array_value.values[0]
    attribute = length_delimited(1, b"gen_ai.system") + length_delimited(2, value)
    body = length_delimited(
        1, length_delimited(2, length_delimited(2, length_delimited(9, attribute)))
    )
    with pytest.raises(Undecodable, match="not a protobuf ExportTraceServiceRequest"):
        decode_request(body, Encoding.PROTOBUF)
    nested = '{"stringValue": "x"}'
    for _ in range(150):
        nested = f'{{"arrayValue": {{"values": [{nested}]}}}}'
    document = f'{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{{"attributes": [{{"key": "a", "value": {nested}}}]}}]}}]}}]}}'
    with pytest.raises(Undecodable, match="not an OTLP/JSON ExportTraceServiceRequest"):
        decode_request(document.encode(), Encoding.JSON)


def test_gzip_bodies_are_inflated_within_the_limit() -> None:
    body = MIXED.SerializeToString()
    assert decompress(gzip.compress(body), "gzip", 10_000) == body
    assert decompress(gzip.compress(body[:10]) + gzip.compress(body[10:]), "GZIP", 10_000) == body
    assert decompress(body, None, 10_000) == body
    assert decompress(body, "identity", 10_000) == body


def test_gzip_bodies_that_inflate_past_the_limit_or_are_broken_are_refused() -> None:
    bomb = gzip.compress(b"\0" * 1_000_001)
    assert len(bomb) < 2_000
    with pytest.raises(TooLarge, match="the decompressed body exceeds 1000000 bytes"):
        decompress(bomb, "gzip", 1_000_000)
    with pytest.raises(Undecodable, match="truncated"):
        decompress(gzip.compress(b"x" * 100)[:-12], "gzip", 1_000)
    with pytest.raises(Undecodable, match="cannot be decompressed"):
        decompress(b"not gzip at all", "gzip", 1_000)
    with pytest.raises(UnsupportedEncoding, match="'br' is not read here"):
        decompress(b"", "br", 1_000)


@pytest.mark.parametrize(
    ("attributes", "llm"),
    [
        ({"gen_ai.operation.name": "chat"}, True),
        ({"gen_ai.operation.name": "text_completion"}, True),
        ({"gen_ai.operation.name": "generate_content"}, True),
        ({"gen_ai.operation.name": "execute_tool", "gen_ai.request.model": "m"}, False),
        ({"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "openai"}, False),
        ({"gen_ai.operation.name": "embeddings"}, False),
        ({"gen_ai.system": "openai"}, True),
        ({"gen_ai.provider.name": "openai"}, True),
        ({"gen_ai.request.model": "gpt-4o"}, True),
        ({"openinference.span.kind": "LLM"}, True),
        ({"openinference.span.kind": "TOOL", "gen_ai.request.model": "m"}, False),
        ({"openinference.span.kind": "UNKNOWN", "gen_ai.operation.name": "chat"}, True),
        ({"openinference.span.kind": "CHAIN"}, False),
        ({"nat.event_type": "LLM_START", "nat.span.kind": "LLM"}, True),
        ({"nat.event_type": "TOOL_START"}, False),
        ({"nemo_relay.scope_type": "llm"}, True),
        ({"nemo_relay.scope_type": "agent"}, False),
        ({"http.request.method": "POST", "llm.model_name": "m"}, False),
        ({}, False),
    ],
)
def test_llm_spans_are_told_by_the_conventions_own_markers(
    attributes: dict[str, str], llm: bool
) -> None:
    assert is_llm_span([attribute(key, value) for key, value in attributes.items()]) is llm


def test_items_are_forwarded_in_order_in_runs_within_the_body_limit() -> None:
    items = [b"a" * 4, b"b" * 5, b"c" * 2, b"d" * 12, b"e"]
    assert batches(items, 10) == [[b"aaaa", b"bbbbb"], [b"cc"], [b"d" * 12], [b"e"]]
    assert batches([], 10) == []


def test_a_fully_accepted_export_answers_an_empty_response_in_its_encoding() -> None:
    record = LogRecord("w", "c", {})
    assert export_answer([record], Encoding.PROTOBUF) == b""
    assert export_answer([record], Encoding.JSON) == b"{}"


def test_refused_spans_are_counted_and_summarised_by_reason() -> None:
    verdicts: Sequence[LogRecord | Refusal] = [
        LogRecord("w", "c", {}),
        Refusal(RejectReason.INCOMPLETE_CALL, "otlp-span: LLM span 'a' carries no output"),
        Refusal(RejectReason.INCOMPLETE_CALL, "otlp-span: LLM span 'b' carries no output"),
        Refusal(RejectReason.MISSING_FIELD, "otlp-span: no client id"),
    ]
    answer = ExportTraceServiceResponse.FromString(export_answer(verdicts, Encoding.PROTOBUF))
    assert answer.partial_success.rejected_spans == 3
    assert answer.partial_success.error_message == (
        "3 of 4 LLM span(s) rejected, kept in logs.rejected: "
        "incomplete_call x2 (otlp-span: LLM span 'a' carries no output); "
        "missing_field x1 (otlp-span: no client id)"
    )


def test_a_failure_answers_a_google_rpc_status_in_the_requests_encoding() -> None:
    # Field 1 (code) varint 3, field 2 (message) of 5 bytes.
    assert status_answer(3, "hello", Encoding.PROTOBUF) == b"\x08\x03\x12\x05hello"
    assert orjson.loads(status_answer(14, "later", Encoding.JSON)) == {
        "code": 14,
        "message": "later",
    }


# -- the endpoint ----------------------------------------------------------------------------


def client(topic: FakeRawTopic, **settings: Any) -> httpx.AsyncClient:
    return intake_client(otlp.router, topic, **settings)


def skipped_spans() -> float:
    value = REGISTRY.get_sample_value("flywheel_ingest_otlp_spans_total", {"outcome": "skipped"})
    return value or 0.0


async def test_llm_spans_of_a_real_nat_export_are_forwarded_and_other_spans_skipped() -> None:
    topic = FakeRawTopic()
    manifest = orjson.loads((FIXTURES / "nat" / "manifest.json").read_bytes())
    before = skipped_spans()
    async with client(topic) as http:
        for entry in manifest["requests"]:
            body = (FIXTURES / "nat" / entry["file"]).read_bytes()
            response = await http.post("/v1/traces", content=body, headers=PROTOBUF)
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/x-protobuf"
    forwarded = [item for lines, _, _ in topic.sent for item in lines]
    assert len(forwarded) == manifest["llm_spans"]
    assert {(key, fmt) for _, key, fmt in topic.sent} == {
        (b"nat-weather-assistant", Format.OTLP_SPAN)
    }
    assert skipped_spans() - before == manifest["spans"] - manifest["llm_spans"]


async def test_an_export_with_refused_spans_answers_a_partial_success_and_forwards_them_all() -> (
    None
):
    topic = FakeRawTopic()
    async with client(topic) as http:
        response = await http.post(
            "/v1/traces", content=export(LLM, NO_OUTPUT, TOOL).SerializeToString(), headers=PROTOBUF
        )
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert answer.partial_success.error_message.startswith(
        "1 of 2 LLM span(s) rejected, kept in logs.rejected: incomplete_call x1 "
        "(otlp-span: LLM span 'chat gpt-4o' carries no output"
    )
    ((items, key, fmt),) = topic.sent
    assert (len(items), key, fmt) == (2, b"shop-assistant", Format.OTLP_SPAN)


async def test_a_span_numbering_its_attributes_with_non_ascii_digits_is_answered_not_crashed_on() -> (
    None
):
    topic = FakeRawTopic()
    odd = span(
        "chat gpt-4o",
        7,
        gen_ai__operation__name="chat",
        gen_ai__prompt__0__role="user",
        gen_ai__prompt__0__content="Hi",
        # "\u00b2".isdigit() is true, and int() refuses it: no message number.
        **{"gen_ai__prompt__\u00b2__role": "user"},
        gen_ai__completion__0__role="assistant",
        gen_ai__completion__0__content="Hello",
    )
    async with client(topic) as http:
        response = await http.post(
            "/v1/traces", content=export(odd).SerializeToString(), headers=PROTOBUF
        )
    assert (response.status_code, response.content) == (200, b"")
    ((items, _, _),) = topic.sent
    assert len(items) == 1


async def test_an_export_whose_items_outgrow_the_body_limit_goes_in_several_runs() -> None:
    topic = FakeRawTopic()
    body = export(*(llm_span(n) for n in range(10, 40))).SerializeToString()
    async with client(topic, max_body_bytes=15_000, max_line_bytes=5_000) as http:
        response = await http.post("/v1/traces", content=body, headers=PROTOBUF)
    assert len(body) < 15_000 < sum(len(item) for lines, _, _ in topic.sent for item in lines)
    assert (response.status_code, response.content) == (200, b"")
    assert len(topic.sent) > 1
    sent = [orjson.loads(item) for lines, _, _ in topic.sent for item in lines]
    assert [int(s["scopeSpans"][0]["spans"][0]["spanId"], 16) for s in sent] == list(range(10, 40))


async def test_an_otlp_json_export_is_answered_in_json() -> None:
    topic = FakeRawTopic()
    line = (FIXTURES / "relay" / "relay-gen_ai.jsonl").read_bytes().splitlines()[0]
    async with client(topic) as http:
        response = await http.post("/v1/traces", content=line, headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"  # int64 in protobuf's JSON mapping
    assert "incomplete_call x1" in partial["errorMessage"]
    assert len(topic.sent[0][0]) == 5


async def test_an_export_without_llm_spans_forwards_nothing_and_succeeds() -> None:
    topic = FakeRawTopic()
    async with client(topic) as http:
        response = await http.post(
            "/v1/traces", content=export(TOOL, HTTP).SerializeToString(), headers=PROTOBUF
        )
    assert (response.status_code, response.content) == (200, b"")
    assert topic.sent == []


async def test_a_gzip_body_is_read_and_one_inflating_past_the_limit_is_refused() -> None:
    topic = FakeRawTopic()
    async with client(topic) as http:
        ok = await http.post(
            "/v1/traces",
            content=gzip.compress(MIXED.SerializeToString()),
            headers={**PROTOBUF, "content-encoding": "gzip"},
        )
        bomb = await http.post(
            "/v1/traces",
            content=gzip.compress(b"\0" * 200_001),
            headers={**PROTOBUF, "content-encoding": "gzip"},
        )
    assert ok.status_code == 200
    assert len(topic.sent) == 1
    assert bomb.status_code == 413
    assert bomb.content == status_answer(
        8, "the decompressed body exceeds 200000 bytes", Encoding.PROTOBUF
    )


async def test_a_body_over_the_limit_is_refused_before_decoding() -> None:
    async with client(FakeRawTopic()) as http:
        response = await http.post("/v1/traces", content=b"{" * 200_001, headers=JSON)
    assert response.status_code == 413
    assert response.json() == {"code": 8, "message": "the body exceeds 200000 bytes"}


async def test_an_undecodable_body_answers_400_with_the_reason() -> None:
    topic = FakeRawTopic()
    async with client(topic) as http:
        response = await http.post("/v1/traces", content=b'{"resourceSpans": 3}', headers=JSON)
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert response.json()["message"].startswith("not an OTLP/JSON ExportTraceServiceRequest")
    assert topic.sent == []


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-ndjson"},
        {},
        {**PROTOBUF, "content-encoding": "deflate"},
    ],
)
async def test_other_media_types_and_encodings_answer_415(headers: dict[str, str]) -> None:
    async with client(FakeRawTopic()) as http:
        response = await http.post("/v1/traces", content=MIXED.SerializeToString(), headers=headers)
    assert response.status_code == 415


async def test_a_token_when_configured_is_required() -> None:
    topic = FakeRawTopic()
    body = MIXED.SerializeToString()
    async with client(topic, token=SecretStr("s3cret")) as http:
        missing = await http.post("/v1/traces", content=body, headers=PROTOBUF)
        right = await http.post(
            "/v1/traces", content=body, headers={**PROTOBUF, "authorization": "Bearer s3cret"}
        )
    assert (missing.status_code, right.status_code) == (401, 200)
    assert len(topic.sent) == 1


async def test_kafka_unavailable_answers_503_with_retry_after() -> None:
    topic = FakeRawTopic()
    topic.down = True
    async with client(topic) as http:
        response = await http.post(
            "/v1/traces", content=MIXED.SerializeToString(), headers=PROTOBUF
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(otlp.RETRY_AFTER_S)
    assert response.content == status_answer(
        14,
        "1 of 1 lines not acknowledged: timed out; retrying the export is safe",
        Encoding.PROTOBUF,
    )


async def test_a_span_over_the_line_limit_refuses_the_whole_export() -> None:
    topic = FakeRawTopic()
    huge = span(
        "chat gpt-4o",
        9,
        gen_ai__operation__name="chat",
        gen_ai__input__messages=INPUT,
        gen_ai__output__messages=OUTPUT.replace("Yo", "Yo" * 40_000),
    )
    async with client(topic) as http:
        response = await http.post(
            "/v1/traces", content=export(LLM, huge).SerializeToString(), headers=PROTOBUF
        )
    assert response.status_code == 413
    assert b"1 line(s) over 60000 bytes (line 2); nothing was sent" in response.content
    assert topic.sent == []


async def test_spans_of_a_client_outside_a_scoped_tokens_clients_are_rejected_in_the_answer() -> (
    None
):
    topic = FakeRawTopic()
    tokens = {
        "globex": {"token": "globex-s3cret", "clients": ["globex"]},
        "acme": {"token": "acme-s3cret", "clients": ["acme"]},
    }
    body = export(LLM).SerializeToString()  # its client is `acme` (service.namespace)
    async with client(topic, tokens=tokens) as http:
        other = await http.post(
            "/v1/traces",
            content=body,
            headers={**PROTOBUF, "authorization": "Bearer globex-s3cret"},
        )
        own = await http.post(
            "/v1/traces", content=body, headers={**PROTOBUF, "authorization": "Bearer acme-s3cret"}
        )
    refused = ExportTraceServiceResponse.FromString(other.content).partial_success
    assert refused.rejected_spans == 1
    assert "client_not_allowed x1" in refused.error_message
    assert ExportTraceServiceResponse.FromString(own.content).partial_success.rejected_spans == 0
    assert topic.tokens == ["globex", "acme"]  # both forwarded: ingest decides again on reading
