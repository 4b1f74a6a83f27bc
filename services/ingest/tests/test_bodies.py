"""Bounded bodies: a declared length over the limit is refused before reading, a streamed body
is cut off once over it, and a request may carry only so many lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from flywheel_ingest.endpoints import bulk, otlp, relay
from flywheel_ingest.handlers import intake_router
from flywheel_ingest.testing import FakeRawTopic, intake_client

pytestmark = pytest.mark.unit

LIMIT = 4096
CHUNK = 1024


class Stream:
    """A request body of `chunks` chunks, counting how many the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"{}" + b" " * (CHUNK - 3) + b"\n"


ROUTES: list[tuple[Any, str, str]] = [
    (intake_router, "/v1/logs", "application/x-ndjson"),
    (bulk.router, "/_bulk", "application/x-ndjson"),
    (otlp.router, "/v1/traces", "application/json"),
    (relay.router, "/v1/relay/events", "application/x-ndjson"),
]


def _client(router: Any, topic: FakeRawTopic, **settings: Any) -> httpx.AsyncClient:
    return intake_client(router, topic, max_body_bytes=LIMIT, max_line_bytes=CHUNK, **settings)


@pytest.mark.parametrize(("router", "path", "content_type"), ROUTES)
async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    router: Any, path: str, content_type: str
) -> None:
    topic, body = FakeRawTopic(), Stream(10**6)  # a gigabyte, were it read
    headers = {"content-type": content_type, "content-length": str(CHUNK * 10**6)}
    async with _client(router, topic) as http:
        response = await http.post(path, content=body, headers=headers)
    assert response.status_code == 413
    assert f"exceeds {LIMIT} bytes" in response.text
    assert body.pulled == 0
    assert topic.sent == []


@pytest.mark.parametrize(("router", "path", "content_type"), ROUTES)
async def test_a_streamed_body_is_cut_off_once_over_the_limit(
    router: Any, path: str, content_type: str
) -> None:
    topic, body = FakeRawTopic(), Stream(10**6)
    async with _client(router, topic) as http:
        response = await http.post(path, content=body, headers={"content-type": content_type})
    assert response.status_code == 413
    assert body.pulled == LIMIT // CHUNK + 1  # the chunk that went over, and no further
    assert topic.sent == []


async def test_a_body_within_the_limit_is_read_whole() -> None:
    topic = FakeRawTopic()
    async with _client(intake_router, topic) as http:
        response = await http.post("/v1/logs", content=Stream(LIMIT // CHUNK))
    assert response.status_code == 202
    assert response.json()["accepted"] == LIMIT // CHUNK


async def test_more_lines_than_max_lines_are_refused_whole_with_a_clear_message() -> None:
    topic = FakeRawTopic()
    async with _client(intake_router, topic, max_lines=3) as http:
        over = await http.post("/v1/logs", content=b"{}\n" * 4)
        at = await http.post("/v1/logs", content=b"{}\n\n\n" * 3)  # blank lines do not count
    assert over.status_code == 413
    assert over.json()["detail"] == (
        "the request carries 4 lines; the limit is 3 per request "
        "(FLYWHEEL_INGEST_INTAKE__MAX_LINES): split it; nothing was sent"
    )
    assert at.status_code == 202
    assert topic.sent == [([b"{}"] * 3, None, topic.sent[0][2])]


async def test_more_bulk_documents_than_max_lines_are_refused_as_elasticsearch_would() -> None:
    topic = FakeRawTopic()
    body = b'{"index":{}}\n{}\n' * 4
    async with _client(bulk.router, topic, max_lines=3) as http:
        response = await http.post(
            "/_bulk", content=body, headers={"content-type": "application/x-ndjson"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "content_too_long_exception"
    assert "FLYWHEEL_INGEST_INTAKE__MAX_LINES" in response.json()["error"]["reason"]
    assert topic.sent == []


async def test_a_protobuf_body_on_v1_logs_is_refused_with_415_unread() -> None:
    topic, body = FakeRawTopic(), Stream(3)
    async with _client(intake_router, topic) as http:
        response = await http.post(
            "/v1/logs", content=body, headers={"content-type": "application/x-protobuf"}
        )
    assert response.status_code == 415
    assert body.pulled == 0
    assert topic.sent == []
