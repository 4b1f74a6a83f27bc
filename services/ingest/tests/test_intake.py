"""POST /v1/logs: NDJSON lines forwarded as they are, limits, auth, Kafka unavailability."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from flywheel_ingest.config import IntakeSettings
from flywheel_ingest.handlers import intake_router
from flywheel_ingest.intake import LogIntake
from flywheel_ingest.producers import Format
from flywheel_ingest.testing import FakeRawTopic, intake_client

pytestmark = pytest.mark.unit


def _client(topic: FakeRawTopic, **settings: Any) -> httpx.AsyncClient:
    return intake_client(intake_router, topic, max_body_bytes=4096, max_line_bytes=1024, **settings)


async def test_lines_are_forwarded_verbatim_in_order_blank_lines_skipped() -> None:
    topic = FakeRawTopic()
    body = b'{"a": 1}\r\n\n  \nnot json at all\n{"b": 2}\n'
    async with _client(topic) as client:
        response = await client.post("/v1/logs?source=billing-app", content=body)
    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "blank": 2}
    assert topic.sent == [
        ([b'{"a": 1}', b"not json at all", b'{"b": 2}'], b"billing-app", Format.RECORD)
    ]


async def test_a_body_without_source_is_sent_unkeyed() -> None:
    topic = FakeRawTopic()
    async with _client(topic) as client:
        response = await client.post("/v1/logs", content=b"{}")
    assert response.status_code == 202
    assert topic.sent == [([b"{}"], None, Format.RECORD)]


async def test_too_large_bodies_and_lines_are_refused_whole() -> None:
    topic = FakeRawTopic()
    async with _client(topic) as client:
        big_body = await client.post("/v1/logs", content=b"{}\n" * 2000)
        long_line = await client.post("/v1/logs", content=b"{}\n" + b"x" * 1025 + b"\n{}")
    assert big_body.status_code == 413
    assert big_body.json()["detail"] == "the body exceeds 4096 bytes"
    assert long_line.status_code == 413
    assert long_line.json()["detail"] == "1 line(s) over 1024 bytes (line 2); nothing was sent"
    assert topic.sent == []


async def test_a_token_when_configured_is_required() -> None:
    topic = FakeRawTopic()
    async with _client(topic, token=SecretStr("s3cret")) as client:
        missing = await client.post("/v1/logs", content=b"{}")
        wrong = await client.post("/v1/logs", content=b"{}", headers={"authorization": "Bearer x"})
        right = await client.post(
            "/v1/logs", content=b"{}", headers={"authorization": "Bearer s3cret"}
        )
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 202)
    assert len(topic.sent) == 1


async def test_kafka_unavailable_answers_503_and_says_a_retry_is_safe() -> None:
    topic = FakeRawTopic()
    topic.down = True
    async with _client(topic) as client:
        response = await client.post("/v1/logs", content=b"{}\n{}")
    assert response.status_code == 503
    assert "retrying the request is safe" in response.json()["detail"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer s3cret",
        "ApiKey s3cret",
        "Basic " + base64.b64encode(b"elastic:s3cret").decode(),
    ],
)
async def test_the_token_is_read_from_bearer_apikey_or_basic_auth(authorization: str) -> None:
    topic = FakeRawTopic()
    async with _client(topic, token=SecretStr("s3cret")) as client:
        response = await client.post(
            "/v1/logs", content=b"{}", headers={"authorization": authorization}
        )
    assert response.status_code == 202


@pytest.mark.parametrize(
    "authorization",
    ["Basic " + base64.b64encode(b"s3cret:wrong").decode(), "Basic !!!", "Token s3cret", ""],
)
async def test_a_token_in_the_wrong_place_is_refused(authorization: str) -> None:
    topic = FakeRawTopic()
    async with _client(topic, token=SecretStr("s3cret")) as client:
        response = await client.post(
            "/v1/logs", content=b"{}", headers={"authorization": authorization}
        )
    assert response.status_code == 401
    assert topic.sent == []


@pytest.mark.parametrize(
    "content_type", ["application/x-protobuf", "application/octet-stream", "text/html"]
)
async def test_a_body_that_is_not_ndjson_or_json_is_refused_with_415(content_type: str) -> None:
    topic = FakeRawTopic()
    async with _client(topic) as client:
        response = await client.post(
            "/v1/logs", content=b"\x0a\x03abc", headers={"content-type": content_type}
        )
    assert response.status_code == 415
    assert response.json()["detail"].startswith(f"Content-Type {content_type!r} is not read here")
    assert topic.sent == []


@pytest.mark.parametrize(
    "content_type",
    ["application/x-ndjson", "application/json; charset=utf-8", "text/plain", "APPLICATION/JSONL"],
)
async def test_ndjson_and_json_content_types_are_read(content_type: str) -> None:
    topic = FakeRawTopic()
    async with _client(topic) as client:
        response = await client.post(
            "/v1/logs", content=b"{}", headers={"content-type": content_type}
        )
    assert response.status_code == 202


async def test_producer_items_are_forwarded_with_their_format_and_their_verdicts() -> None:
    topic = FakeRawTopic()
    intake = LogIntake(topic, IntakeSettings(max_body_bytes=4096, max_line_bytes=1024))
    verdicts = await intake.accept_items([b"{}", b"not json"], Format.NAT, source="exporter")
    assert topic.sent == [([b"{}", b"not json"], b"exporter", Format.NAT)]
    assert [type(v).__name__ for v in verdicts] == ["Refusal", "Refusal"]
