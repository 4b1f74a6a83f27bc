"""Throughput of the NIM proxy at zero configured latency (issue 5, point 5): chat completions/s
in-process through the ASGI app and over real HTTP, and embeddings/s. Run with -m benchmark -s.

The in-process figure drives the ASGI app directly (no HTTP client library in the way), so it
measures the emulator: routing, middleware, parsing, the model and serialisation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.types import ASGIApp, Message

from flywheel_nmp_emulator.app import create_app
from flywheel_nmp_emulator.config import Settings
from flywheel_nmp_emulator.testing import (
    deployment_body,
    emulator_process,
    free_port,
    in_process,
    poll,
    tool_calling_config,
    upload_dataset,
)

pytestmark = pytest.mark.benchmark

MODEL = "meta/llama-3.2-1b-instruct"
EMBEDDER = "nvidia/llama-3.2-nv-embedqa-1b-v2"
TARGET_CHAT_PER_S = 500
CHAT_REQUESTS = 3000
HTTP_CONCURRENCY = 8


async def asgi_call(app: ASGIApp, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    delivered = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Future()  # the app never needs to see a disconnect here
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def chat_bodies(traffic: list[dict[str, Any]]) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "model": MODEL,
                "messages": r["request"]["messages"],
                "tools": r["request"]["tools"],
                "tool_choice": "required",
            }
        )
        for r in traffic[:300]
    ]


async def rate(
    count: int, call: Callable[[int], Coroutine[Any, Any, None]], concurrency: int = 1
) -> float:
    async def worker(offset: int) -> None:
        for i in range(offset, count, concurrency):
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return count / (time.perf_counter() - started)


async def test_chat_and_embeddings_in_process(router_traffic: list[dict[str, Any]]) -> None:
    app = create_app(Settings())
    bodies = chat_bodies(router_traffic)
    async with app.router.lifespan_context(app):
        status, _ = await asgi_call(
            app, "POST", "/v1/deployment/model-deployments", orjson.dumps(deployment_body(MODEL))
        )
        assert status == 200
        await asgi_call(
            app, "GET", "/v1/deployment/model-deployments/dfwbp/meta-llama-3.2-1b-instruct"
        )

        async def chat(i: int) -> None:
            code, _ = await asgi_call(app, "POST", "/v1/chat/completions", bodies[i % len(bodies)])
            assert code == 200

        await rate(200, chat)  # warm the caches
        chat_rate = await rate(CHAT_REQUESTS, chat)

        texts = [str(r["request"]["messages"][-1]["content"]) for r in router_traffic[:320]]
        batch = [
            orjson.dumps({"model": EMBEDDER, "input": texts[i : i + 32]}) for i in range(0, 320, 32)
        ]

        async def embeddings(i: int) -> None:
            code, _ = await asgi_call(app, "POST", "/v1/embeddings", batch[i % len(batch)])
            assert code == 200

        embed_rate = 32 * await rate(300, embeddings)
    print(
        f"\nin-process (ASGI): {chat_rate:,.0f} chat completions/s (target {TARGET_CHAT_PER_S}), {embed_rate:,.0f} embeddings/s (batches of 32, 2048-d)"
    )
    assert chat_rate >= TARGET_CHAT_PER_S / 5, "chat path is pathologically slow"


class RawHttpConnection:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams. httpx costs more CPU per request
    than the emulator does, and both share the machine's two cores, so it would measure itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawHttpConnection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        status_line = await self._reader.readuntil(b"\r\n")
        length = 0
        while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self._reader.readexactly(length)
        return int(status_line.split()[1])

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


async def test_chat_over_http(tmp_path: Path, router_traffic: list[dict[str, Any]]) -> None:
    bodies = chat_bodies(router_traffic)
    port = free_port()
    with emulator_process(tmp_path / "state.json", port, gpus=2) as client:
        assert (
            client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL)).status_code
            == 200
        )
        deadline = time.monotonic() + 10
        path = "/v1/deployment/model-deployments/dfwbp/meta-llama-3.2-1b-instruct"
        while client.get(path).json()["status_details"]["status"] != "ready":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        connections = [await RawHttpConnection.open(port) for _ in range(HTTP_CONCURRENCY)]

        async def chat(i: int) -> None:
            status = await connections[i % HTTP_CONCURRENCY].post(
                "/v1/chat/completions", bodies[i % len(bodies)]
            )
            assert status == 200

        await rate(200, chat, HTTP_CONCURRENCY)
        http_rate = await rate(CHAT_REQUESTS, chat, HTTP_CONCURRENCY)
        for connection in connections:
            await connection.close()
    print(
        f"\nover HTTP (uvicorn, 1 process, {HTTP_CONCURRENCY} keep-alive connections): {http_rate:,.0f} chat completions/s"
    )
    assert http_rate >= TARGET_CHAT_PER_S / 5, "chat over HTTP is pathologically slow"


async def test_evaluation_job_throughput(router_traffic: list[dict[str, Any]]) -> None:
    """Records/s of a tool-calling evaluation job (model + tool-calling metric + judge)."""
    records = router_traffic[:500]
    async with in_process(Settings()) as client:
        await client.post("/v1/deployment/model-deployments", json=deployment_body(MODEL))
        files_url = await upload_dataset(client, "dfwbp", "eval", {"eval_data.jsonl": records})
        started = time.perf_counter()
        job = await client.post(
            "/v1/evaluation/jobs",
            json={
                "config": tool_calling_config(files_url, "meta/llama-3.3-70b-instruct"),
                "target": {"type": "model", "model": MODEL},
            },
        )
        done = await poll(
            client,
            f"/v1/evaluation/jobs/{job.json()['id']}",
            lambda b: b["status"] in ("completed", "failed"),
        )
        elapsed = time.perf_counter() - started
    assert done["status"] == "completed"
    print(
        f"\nevaluation job: {len(records) / elapsed:,.0f} records/s ({len(records)} tool-calling records, judge included)"
    )
