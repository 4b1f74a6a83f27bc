"""POST /v1/relay/events on a fake source topic, with Relay's real export (fixtures): one item
per call forwarded with the relay-call format, the per-call answer, media types, limits, auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from flywheel_ingest.endpoints import relay
from flywheel_ingest.producers import Format
from flywheel_ingest.testing import FakeRawTopic, intake_client

pytestmark = pytest.mark.unit

EXPORT = (Path(__file__).parent / "fixtures" / "producers" / "relay" / "events.jsonl").read_bytes()
NDJSON = {"content-type": "application/x-ndjson"}


def _client(topic: FakeRawTopic, **settings: Any) -> httpx.AsyncClient:
    settings = {"max_line_bytes": 100_000, **settings}
    return intake_client(relay.router, topic, max_record_bytes=900_000, **settings)


async def test_relays_export_is_forwarded_as_one_relay_call_item_per_llm_call() -> None:
    topic = FakeRawTopic()
    async with _client(topic) as client:
        response = await client.post(
            "/v1/relay/events?source=trip-app", content=EXPORT, headers=NDJSON
        )
    assert response.status_code == 202, response.text
    ((items, key, fmt),) = topic.sent
    assert (len(items), key, fmt) == (9, b"trip-app", Format.RELAY_CALL)
    calls = [orjson.loads(item) for item in items]
    assert all(set(call) == {"start", "end", "context"} for call in calls)
    assert all(call["start"]["uuid"] == call["end"]["uuid"] for call in calls)
    assert {call["context"]["agent"] for call in calls} == {"trip-planner", "weather researcher"}


async def test_the_answer_says_how_many_calls_will_be_records_and_why_others_will_not() -> None:
    async with _client(FakeRawTopic()) as client:
        response = await client.post("/v1/relay/events", content=EXPORT, headers=NDJSON)
    body = response.json()
    assert (body["calls"], body["accepted"], body["ignored"]) == (9, 6, 26)
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (6, "tool_calls_missing"),
        (7, "incomplete_call"),
        (8, "empty_response"),
    ]
    assert "upstream 503" in body["rejected"][1]["message"]
    lines = EXPORT.splitlines()
    start_line = body["rejected"][1]["events"][0]
    assert b'"scope_category":"start"' in lines[start_line - 1]


async def test_a_lone_event_per_request_is_refused_unpaired_as_relays_http_post_sink_sends() -> (
    None
):
    topic = FakeRawTopic()
    answers = []
    async with _client(topic) as client:
        for line in EXPORT.splitlines():
            response = await client.post("/v1/relay/events", content=line, headers=NDJSON)
            assert response.status_code == 202
            answers.append(response.json())
    assert sum(a["calls"] for a in answers) == 18
    assert sum(a["accepted"] for a in answers) == 0
    assert {r["reason"] for a in answers for r in a["rejected"]} == {"unpaired_event"}
    assert sum(len(items) for items, _, _ in topic.sent) == 18  # kept in logs.rejected


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-ndjson", "application/jsonl; charset=utf-8", "application/json"],
)
async def test_ndjson_jsonl_and_json_bodies_are_read(content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    async with _client(FakeRawTopic()) as client:
        response = await client.post("/v1/relay/events", content=EXPORT, headers=headers)
    assert response.status_code == 202
    assert response.json()["calls"] == 9


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-protobuf", "text/csv"])
async def test_other_media_types_are_refused_with_415(content_type: str) -> None:
    topic = FakeRawTopic()
    async with _client(topic) as client:
        response = await client.post(
            "/v1/relay/events", content=EXPORT, headers={"content-type": content_type}
        )
    assert response.status_code == 415
    assert "application/x-ndjson" in response.json()["detail"]
    assert topic.sent == []


async def test_a_body_over_the_limit_is_refused_whole_with_413() -> None:
    topic = FakeRawTopic()
    async with _client(topic, max_body_bytes=len(EXPORT) - 1) as client:
        response = await client.post("/v1/relay/events", content=EXPORT, headers=NDJSON)
    assert response.status_code == 413
    assert response.json()["detail"] == f"the body exceeds {len(EXPORT) - 1} bytes"
    assert topic.sent == []


async def test_a_call_over_the_line_limit_refuses_the_body_with_413() -> None:
    topic = FakeRawTopic()
    async with _client(topic, max_line_bytes=2048) as client:
        response = await client.post("/v1/relay/events", content=EXPORT, headers=NDJSON)
    assert response.status_code == 413
    assert "over 2048 bytes" in response.json()["detail"]
    assert topic.sent == []


async def test_a_token_when_configured_is_required() -> None:
    topic = FakeRawTopic()
    async with _client(topic, token=SecretStr("s3cret")) as client:
        missing = await client.post("/v1/relay/events", content=EXPORT, headers=NDJSON)
        right = await client.post(
            "/v1/relay/events",
            content=EXPORT,
            headers={**NDJSON, "authorization": "Bearer s3cret"},
        )
    assert (missing.status_code, right.status_code) == (401, 202)
    assert len(topic.sent) == 1


async def test_kafka_unavailable_answers_503_and_says_a_retry_is_safe() -> None:
    topic = FakeRawTopic()
    topic.down = True
    async with _client(topic) as client:
        response = await client.post("/v1/relay/events", content=EXPORT, headers=NDJSON)
    assert response.status_code == 503
    assert "retrying the request is safe" in response.json()["detail"]


async def test_a_body_of_context_events_only_forwards_nothing() -> None:
    topic = FakeRawTopic()
    context = b"\n".join(line for line in EXPORT.splitlines() if b'"category":"llm"' not in line)
    async with _client(topic) as client:
        response = await client.post("/v1/relay/events", content=context, headers=NDJSON)
    assert response.json() == {"calls": 0, "accepted": 0, "rejected": [], "ignored": 26}
    assert topic.sent == []


async def test_what_the_endpoint_read_is_counted_by_kind() -> None:
    def value(kind: str) -> float:
        sample = REGISTRY.get_sample_value("flywheel_ingest_relay_items_total", {"kind": kind})
        return sample or 0.0

    before = {kind: value(kind) for kind in ("call", "unpaired", "other", "unreadable")}
    body = EXPORT + b"\nnot json\n" + EXPORT.splitlines()[1]
    async with _client(FakeRawTopic()) as client:
        await client.post("/v1/relay/events", content=body, headers=NDJSON)
    assert {kind: value(kind) - before[kind] for kind in before} == {
        "call": 9,
        "unpaired": 1,
        "other": 26,
        "unreadable": 1,
    }
