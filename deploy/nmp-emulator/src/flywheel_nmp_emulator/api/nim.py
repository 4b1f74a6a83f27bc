"""The NIM proxy (nim host): served models, chat completions, embeddings (OpenAI formats).

With `hosted_api_key` set, the always-served models (the hosted judge and embedding model) act
as a hosted endpoint would: their chat completions and every embeddings request want
`Authorization: Bearer <key>` and get a 401 (OpenAI's error body) without it or with another
key. Deployed models (candidates, customized models) want the platform key (`api_key`) like
every NIM proxy route, and nothing when it is unset (auth.py). Keys are never logged or echoed.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from flywheel_nmp_emulator.api.auth import refusal_response
from flywheel_nmp_emulator.api.deps import FreshEmulator, fresh_emulator, json_body, parse_json
from flywheel_nmp_emulator.models.embeddings import embed
from flywheel_nmp_emulator.nim_format import chat_response, estimate_tokens
from flywheel_nmp_emulator.real.proxy import forward
from flywheel_nmp_emulator.real.routing import real_route
from flywheel_nmp_emulator.runtime import Emulator

router = APIRouter(tags=["nim proxy"])


def _error(status: int, message: str, kind: str) -> Response:
    # OpenAI-compatible error body, as NIM answers.
    body = {"error": {"message": message, "type": kind, "code": status}, "detail": message}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _unauthorized(request: Request, emu: FreshEmulator, *, hosted: bool) -> Response | None:
    """401 unless the request carries the key this call wants: a hosted model's key when one is
    set (`hosted`: the call reaches a hosted model), else the platform key; None when allowed
    (or no key is set). The mechanism is auth.py's, shared with the platform routes."""
    settings = emu.settings
    key = settings.hosted_api_key if hosted and settings.hosted_api_key else settings.api_key
    return refusal_response(request.headers.get("authorization", ""), key)


@router.get("/v1/models")
async def list_models(emu: FreshEmulator) -> dict[str, Any]:
    created = int(emu.clock())
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": created, "owned_by": "system"}
            for model_id in emu.catalog.served_ids()
        ],
    }


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    # The hot path: no FastAPI dependency (a sixth of the emulator's CPU per request).
    emu = fresh_emulator(request)
    # Which key applies depends on the model only when hosted models have a key of their own;
    # otherwise the platform key is checked before the body is even read.
    keyed_by_model = emu.settings.hosted_api_key is not None
    if not keyed_by_model:
        refused = _unauthorized(request, emu, hosted=False)
        if refused is not None:
            return refused
    raw = await request.body()
    body = parse_json(raw)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(422, "body must be an object with a string 'model'", "BadRequestError")
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) for m in messages)
    ):
        return _error(
            422, "'messages' must be a non-empty list of message objects", "BadRequestError"
        )
    # Only a real server streams; without the real backend the refusal comes first, as it did.
    if body.get("stream") and emu.real is None:
        return _error(400, "streaming is not supported by the NMP emulator", "BadRequestError")
    model_id: str = body["model"]
    if keyed_by_model:
        hosted = model_id in emu.settings.served_without_deployment()
        refused = _unauthorized(request, emu, hosted=hosted)
        if refused is not None:
            return refused
    if emu.real is not None:
        real = await _real_completion(emu, body, model_id)
        if real is not None:
            return real
    if body.get("stream"):
        return _error(400, "streaming is not supported by the NMP emulator", "BadRequestError")
    model = emu.catalog.chat_model(model_id)
    if model is None:
        return _error(404, f"The model `{model_id}` does not exist.", "NotFoundError")
    tools = body.get("tools")
    reply = model.respond(
        messages, tools if isinstance(tools, list) else None, body.get("tool_choice")
    )
    response = chat_response(model_id, reply, len(raw))
    emu.chat_completions[model_id] += 1
    latency_ms = emu.timings.token_latency_ms * response["usage"]["completion_tokens"]
    if latency_ms > 0:
        await asyncio.sleep(latency_ms / 1000)
    return Response(orjson.dumps(response), media_type="application/json")


async def _real_completion(emu: Emulator, body: dict[str, Any], model_id: str) -> Response | None:
    """The answer of a real server when the real backend serves `model_id`, else None."""
    assert emu.real is not None
    route = real_route(
        model_id, emu.real.settings.model_id, emu.state.deployments, emu.state.models
    )
    if route is None or not emu.catalog.is_served(model_id):
        return None
    server = emu.real.get(route.deployment)
    if server is None:
        # Ready in the state, its server not (re)started yet: the next tick starts it.
        return _error(503, f"The model `{model_id}` is starting.", "ServiceUnavailable")
    emu.chat_completions[model_id] += 1
    return await forward(emu.real, server, body, model_id, route.adapter)


@router.post("/v1/embeddings")
async def embeddings(request: Request, emu: FreshEmulator) -> Response:
    # Every embeddings model counts as hosted: the hosted key, when set, guards them all.
    refused = _unauthorized(request, emu, hosted=True)
    if refused is not None:
        return refused
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(422, "body must be an object with a string 'model'", "BadRequestError")
    model_id: str = body["model"]
    if not emu.catalog.is_served(model_id):
        return _error(404, f"The model `{model_id}` does not exist.", "NotFoundError")
    if not emu.catalog.is_embedding(model_id):
        return _error(400, f"The model `{model_id}` is not an embedding model.", "BadRequestError")
    raw_input = body.get("input")
    texts = [raw_input] if isinstance(raw_input, str) else raw_input
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return _error(422, "'input' must be a string or a list of strings", "BadRequestError")
    vectors = embed(texts, emu.settings.embedding_dim)
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(vector.tobytes()).decode() if as_base64 else vector,
        }
        for i, vector in enumerate(vectors)
    ]
    tokens = estimate_tokens(sum(len(t) for t in texts))
    response = {
        "object": "list",
        "data": data,
        "model": model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Response(
        orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )
