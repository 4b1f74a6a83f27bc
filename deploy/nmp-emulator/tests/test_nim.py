"""The NIM proxy: served models, chat completions (OpenAI format), embeddings."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from flywheel_nmp_emulator.config import Settings
from flywheel_nmp_emulator.testing import deployment_body, in_process, poll

pytestmark = pytest.mark.unit

MODEL = "meta/llama-3.2-1b-instruct"
EMBEDDER = "nvidia/llama-3.2-nv-embedqa-1b-v2"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order_status",
            "description": "Look up the status and delivery date of an order.",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "description": "Order number, e.g. ORD-123456."}
                },
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "reset_password",
            "description": "Send a password reset link to the account's email address.",
            "parameters": {
                "type": "object",
                "properties": {"email": {"type": "string"}},
                "required": ["email"],
            },
        },
    },
]


async def _deploy(client: httpx.AsyncClient, model: str = MODEL) -> None:
    await client.post("/v1/deployment/model-deployments", json=deployment_body(model))
    await poll(
        client,
        f"/v1/deployment/model-deployments/dfwbp/{model.replace('/', '-')}",
        lambda b: b["status_details"]["status"] == "ready",
    )


async def test_models_lists_deployed_judge_and_embedder(client: httpx.AsyncClient) -> None:
    before = {m["id"] for m in (await client.get("/v1/models")).json()["data"]}
    assert MODEL not in before
    assert {"meta/llama-3.3-70b-instruct", EMBEDDER} <= before
    await _deploy(client)
    after = (await client.get("/v1/models")).json()
    assert after["object"] == "list"
    assert MODEL in {m["id"] for m in after["data"]}


async def test_chat_tool_call_in_openai_format(client: httpx.AsyncClient) -> None:
    await _deploy(client)
    response = await client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": "Forgot my password, the account email is ana.diaz@mail.com",
                }
            ],
            "tools": TOOLS,
            "tool_choice": "required",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "reset_password"
    # Arguments are a JSON string, as OpenAI sends them.
    assert json.loads(call["function"]["arguments"]) == {"email": "ana.diaz@mail.com"}
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_chat_forced_tool_and_plain_answer(client: httpx.AsyncClient) -> None:
    await _deploy(client)
    forced = await client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "Where is ORD-654321?"}],
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "reset_password"}},
        },
    )
    assert (
        forced.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
        == "reset_password"
    )
    plain = await client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [
                {
                    "role": "system",
                    "content": "Returns are free within 30 days. Shipping takes 3 to 5 business days.",
                },
                {"role": "user", "content": "How long does shipping take?"},
            ],
        },
    )
    message = plain.json()["choices"][0]["message"]
    assert "tool_calls" not in message
    assert message["content"] == "Shipping takes 3 to 5 business days."
    assert plain.json()["choices"][0]["finish_reason"] == "stop"


async def test_chat_with_an_undeployed_model_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 404
    assert "does not exist" in response.json()["error"]["message"]


async def test_chat_rejects_bad_bodies(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/chat/completions", json={"messages": []})).status_code == 422
    assert (await client.post("/v1/chat/completions", content=b"{not json")).status_code == 422


async def test_judge_validation_ping(client: httpx.AsyncClient) -> None:
    # validate_llm_judge: status 200 and "choices" in the body.
    response = await client.post(
        "/v1/chat/completions",
        json={
            "model": "meta/llama-3.3-70b-instruct",
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]


async def test_usage_counts_answered_chat_completions_per_model(
    client: httpx.AsyncClient,
) -> None:
    await _deploy(client)
    before = (await client.get("/emulator/usage")).json()
    question = {"messages": [{"role": "user", "content": "Where is ORD-654321?"}], "tools": TOOLS}
    for model in (MODEL, MODEL, "meta/llama-3.3-70b-instruct", "meta/unknown-1b"):
        await client.post("/v1/chat/completions", json={"model": model, **question})
    after = (await client.get("/emulator/usage")).json()
    assert after["chat_completions"] == {MODEL: 2, "meta/llama-3.3-70b-instruct": 1}
    assert before["chat_completions"] == {}
    assert after["cpu_seconds"] > before["cpu_seconds"] >= 0


async def test_embeddings_shape_stability_and_meaning(client: httpx.AsyncClient) -> None:
    texts = [
        "Where is my order? It has not arrived yet.",
        "My order still has not arrived, where is it?",
        "Please reset the password for my account.",
    ]
    response = await client.post(
        "/v1/embeddings", json={"model": EMBEDDER, "input": texts, "input_type": "query"}
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2]
    vectors = np.array([d["embedding"] for d in data])
    assert vectors.shape == (3, 2048)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    again = await client.post("/v1/embeddings", json={"model": EMBEDDER, "input": texts[0]})
    assert np.allclose(again.json()["data"][0]["embedding"], vectors[0])


async def test_embeddings_reject_chat_models_and_unknown_models(client: httpx.AsyncClient) -> None:
    unknown = await client.post(
        "/v1/embeddings", json={"model": "nvidia/other-embed", "input": ["x"]}
    )
    assert unknown.status_code == 404
    chat = await client.post(
        "/v1/embeddings", json={"model": "meta/llama-3.3-70b-instruct", "input": ["x"]}
    )
    assert chat.status_code == 400


JUDGE = "meta/llama-3.3-70b-instruct"
HOSTED_KEY = secrets.token_urlsafe(24)


@pytest.fixture
async def keyed() -> AsyncIterator[httpx.AsyncClient]:
    """An emulator whose hosted models want HOSTED_KEY (NMP_EMULATOR_HOSTED_API_KEY)."""
    async with in_process(Settings(gpus=4, hosted_api_key=SecretStr(HOSTED_KEY))) as c:
        yield c


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert error["message"]
    assert HOSTED_KEY not in response.text


async def test_hosted_models_want_the_key(
    keyed: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chat = {"model": JUDGE, "messages": [{"role": "user", "content": "RATING?"}]}
    embed = {"model": EMBEDDER, "input": ["x"]}
    for path, body in (("/v1/chat/completions", chat), ("/v1/embeddings", embed)):
        _assert_refused(await keyed.post(path, json=body))
        _assert_refused(await keyed.post(path, json=body, headers=_bearer("not-the-key")))
        _assert_refused(await keyed.post(path, json=body, headers={"Authorization": HOSTED_KEY}))
        allowed = await keyed.post(path, json=body, headers=_bearer(HOSTED_KEY))
        assert allowed.status_code == 200, allowed.text
    # Served models are listed without a key (readiness checks use it).
    assert (await keyed.get("/v1/models")).status_code == 200
    assert HOSTED_KEY not in caplog.text


async def test_deployed_candidates_stay_keyless(keyed: httpx.AsyncClient) -> None:
    await _deploy(keyed)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Where is order ORD-123456?"}],
        "tools": TOOLS,
        "tool_choice": "required",
    }
    response = await keyed.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["tool_calls"]


async def test_without_a_hosted_key_nothing_wants_one(client: httpx.AsyncClient) -> None:
    chat = {"model": JUDGE, "messages": [{"role": "user", "content": "hi"}]}
    assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
    embed = {"model": EMBEDDER, "input": ["x"]}
    assert (await client.post("/v1/embeddings", json=embed)).status_code == 200
