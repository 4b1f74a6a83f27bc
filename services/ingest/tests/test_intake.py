"""POST /v1/logs: NDJSON lines forwarded as they are, limits, auth, Kafka unavailability."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from flywheel_ingest.clients.raw_topic import RawTopicUnavailable
from flywheel_ingest.config import IntakeSettings
from flywheel_ingest.handlers import intake_router
from flywheel_ingest.intake import LogIntake

pytestmark = pytest.mark.unit


class FakeTopic:
    def __init__(self) -> None:
        self.sent: list[tuple[list[bytes], bytes | None]] = []
        self.down = False

    async def put(self, lines: Sequence[bytes], key: bytes | None) -> None:
        if self.down:
            raise RawTopicUnavailable("2 of 2 lines not acknowledged: timed out")
        self.sent.append((list(lines), key))


def _client(topic: FakeTopic, **settings: object) -> httpx.AsyncClient:
    intake_settings = IntakeSettings.model_validate(
        {"max_body_bytes": 4096, "max_line_bytes": 1024, **settings}
    )
    app = FastAPI()
    app.include_router(
        intake_router(LogIntake(topic, intake_settings), token=intake_settings.token)
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest")


async def test_lines_are_forwarded_verbatim_in_order_blank_lines_skipped() -> None:
    topic = FakeTopic()
    body = b'{"a": 1}\r\n\n  \nnot json at all\n{"b": 2}\n'
    async with _client(topic) as client:
        response = await client.post("/v1/logs?source=billing-app", content=body)
    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "blank": 2}
    assert topic.sent == [([b'{"a": 1}', b"not json at all", b'{"b": 2}'], b"billing-app")]


async def test_a_body_without_source_is_sent_unkeyed() -> None:
    topic = FakeTopic()
    async with _client(topic) as client:
        response = await client.post("/v1/logs", content=b"{}")
    assert response.status_code == 202
    assert topic.sent == [([b"{}"], None)]


async def test_too_large_bodies_and_lines_are_refused_whole() -> None:
    topic = FakeTopic()
    async with _client(topic) as client:
        big_body = await client.post("/v1/logs", content=b"{}\n" * 2000)
        long_line = await client.post("/v1/logs", content=b"{}\n" + b"x" * 1025 + b"\n{}")
    assert big_body.status_code == 413
    assert big_body.json()["detail"] == "the body exceeds 4096 bytes"
    assert long_line.status_code == 413
    assert long_line.json()["detail"] == "1 line(s) over 1024 bytes (line 2); nothing was sent"
    assert topic.sent == []


async def test_a_token_when_configured_is_required() -> None:
    topic = FakeTopic()
    async with _client(topic, token=SecretStr("s3cret")) as client:
        missing = await client.post("/v1/logs", content=b"{}")
        wrong = await client.post("/v1/logs", content=b"{}", headers={"authorization": "Bearer x"})
        right = await client.post(
            "/v1/logs", content=b"{}", headers={"authorization": "Bearer s3cret"}
        )
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 202)
    assert len(topic.sent) == 1


async def test_kafka_unavailable_answers_503_and_says_a_retry_is_safe() -> None:
    topic = FakeTopic()
    topic.down = True
    async with _client(topic) as client:
        response = await client.post("/v1/logs", content=b"{}\n{}")
    assert response.status_code == 503
    assert "retrying the request is safe" in response.json()["detail"]
