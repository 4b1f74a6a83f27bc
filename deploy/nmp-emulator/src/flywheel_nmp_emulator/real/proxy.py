"""Forward one chat completion to a real server, streaming or not, tools and all: the body goes
as the client sent it, except that a customized model's request applies its adapter by index and
answers under its own model id (llama-server names its alias, the base model, in every answer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from fastapi import Response
from fastapi.responses import StreamingResponse

from flywheel_nmp_emulator.real.servers import RealServers, Server


def _error(status: int, message: str, kind: str) -> Response:
    # OpenAI's error body, as the heuristic path answers (api/nim.py).
    body = {"error": {"message": message, "type": kind, "code": status}, "detail": message}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def upstream_body(
    body: dict[str, Any], lora: int | None, required_as_auto: bool = False
) -> dict[str, Any]:
    """What the server gets: the client's body with only the routed adapter applied (a `lora`
    sent by the client is dropped: adapters are chosen by model id, as on a NIM), and, with
    `required_as_auto`, `tool_choice: "required"` sent as `"auto"` (config.py says why)."""
    out = {k: v for k, v in body.items() if k != "lora"}
    if lora is not None:
        out["lora"] = [{"id": lora, "scale": 1.0}]
    if required_as_auto and out.get("tool_choice") == "required":
        out["tool_choice"] = "auto"
    return out


def rename_model(chunk: bytes, model_id: str) -> bytes:
    """An SSE line (`data: {...}`) or a whole JSON answer with its `model` set to `model_id`."""
    prefix = b"data: " if chunk.startswith(b"data: ") else b""
    payload = chunk[len(prefix) :]
    if not payload.startswith(b"{"):
        return chunk  # "data: [DONE]", blank lines
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return chunk
    if isinstance(parsed, dict) and "model" in parsed:
        parsed["model"] = model_id
    return prefix + orjson.dumps(parsed)


async def forward(
    servers: RealServers, server: Server, body: dict[str, Any], model_id: str, adapter: str | None
) -> Response:
    if not await server.wait_ready(servers.settings.ready_timeout_s):
        return _error(
            503, f"The model `{model_id}` is not ready: {server.failure}", "ServiceUnavailable"
        )
    lora = None if adapter is None else server.lora_index(adapter)
    if adapter is not None and lora is None:
        return _error(503, f"The adapter of `{model_id}` is loading", "ServiceUnavailable")
    rename = adapter is not None
    request = servers.client.build_request(
        "POST",
        f"{server.url}/v1/chat/completions",
        content=orjson.dumps(
            upstream_body(body, lora, servers.settings.tool_choice_required_as_auto)
        ),
        headers={**server.headers(), "Content-Type": "application/json"},
    )
    try:
        upstream = await servers.client.send(request, stream=True)
    except httpx.HTTPError as exc:
        return _error(503, f"The model `{model_id}` did not answer: {exc}", "ServiceUnavailable")
    is_stream = upstream.headers.get("content-type", "").startswith("text/event-stream")
    if not is_stream or upstream.status_code != 200:
        try:
            content = await upstream.aread()
        finally:
            await upstream.aclose()
        if rename and upstream.status_code == 200:
            content = rename_model(content, model_id)
        return Response(
            content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type", "application/json"),
        )
    return StreamingResponse(
        _relay(upstream, model_id if rename else None), media_type="text/event-stream"
    )


async def _relay(upstream: httpx.Response, rename_to: str | None) -> AsyncIterator[bytes]:
    # Closing the upstream response when the client goes away ends the generation there too.
    try:
        if rename_to is None:
            async for chunk in upstream.aiter_raw():
                yield chunk
        else:
            async for line in upstream.aiter_lines():
                yield rename_model(line.encode(), rename_to) + b"\n"
    finally:
        await upstream.aclose()
