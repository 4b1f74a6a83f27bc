"""The NMP emulator's real backend with the real model (opt-in: `make test-real-model`): a
deployment of Qwen2.5-Coder-0.5B starts a real llama-server, the NIM proxy answers through it
(tools, streaming), deletion stops it, and a SIGKILLed emulator leaves no server behind and
serves again after its restart. Installs the model on first use, as `make real-model` does.

Figures (start time, tokens/s of one request) are printed; run with `-s` to see them.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_contracts.runtime.testing import ServiceProcess
from flywheel_localstack.real_model import SERVED_MODEL, emulator_env, install
from flywheel_nmp_emulator.real.process import start_ticks
from flywheel_nmp_emulator.testing import (
    deployment_body,
    emulator_process,
    emulator_service,
    free_port,
)

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(1800)]

DEPLOYMENT = f"dfwbp/{SERVED_MODEL.replace('/', '-')}"
PATH = f"/v1/deployment/model-deployments/{DEPLOYMENT}"
ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up the current status of an order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}
CHAT = {
    "model": SERVED_MODEL,
    "messages": [{"role": "user", "content": "Where is my order ORD-482913?"}],
    "tools": [ORDER_TOOL],
    "temperature": 0,
    "max_tokens": 96,
}


@pytest.fixture(scope="module")
def real_env() -> dict[str, str]:
    return emulator_env(install())


def _deploy_and_wait(client: httpx.Client, within_s: float = 240) -> tuple[int, int, float]:
    """POST the deployment, wait for ready: the server's pid, start ticks and seconds to ready."""
    started = time.monotonic()
    created = client.post("/v1/deployment/model-deployments", json=deployment_body(SERVED_MODEL))
    assert created.status_code == 200, created.text
    return _wait_ready(client, started, within_s)


def _wait_ready(
    client: httpx.Client, started: float, within_s: float = 240
) -> tuple[int, int, float]:
    while True:
        status = client.get(PATH).json()["status_details"]
        if status["status"] == "ready":
            break
        assert status["status"] == "pending", status
        assert time.monotonic() - started < within_s, status
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    server = client.get("/emulator/state").json()["real_servers"][DEPLOYMENT]
    pid = server["pid"]
    ticks = start_ticks(pid)
    assert ticks is not None, "the deployment is ready but its server is not running"
    return pid, ticks, elapsed


def _wait_gone(pid: int, ticks: int, within_s: float) -> float:
    started = time.monotonic()
    while start_ticks(pid) == ticks:
        assert time.monotonic() - started < within_s, f"llama-server {pid} still runs"
        time.sleep(0.05)
    return time.monotonic() - started


def _call_named(message: dict[str, Any]) -> str:
    # The 0.5B model writes its call in `tool_calls` or as JSON in its content: either counts.
    return json.dumps(message.get("tool_calls") or message.get("content"))


def _streamed_text(chunks: list[dict[str, Any]]) -> str:
    """The content and tool-call fragments of a stream, joined (a name spans several tokens)."""
    parts = []
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            parts.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                function = call.get("function", {})
                parts.append((function.get("name") or "") + (function.get("arguments") or ""))
    return "".join(parts)


def test_a_deployment_serves_the_real_model_until_deleted(
    real_env: dict[str, str], tmp_path: Path
) -> None:
    with emulator_process(
        tmp_path / "state.json", free_port(), gpus=2, extra_env=real_env
    ) as client:
        pid, ticks, ready_s = _deploy_and_wait(client)
        assert client.get("/emulator/state").json()["gpus"]["used"] == 1
        print(f"\nreal deployment ready in {ready_s:.1f}s (llama-server pid {pid})")

        started = time.monotonic()
        answer = client.post("/v1/chat/completions", json=CHAT, timeout=300)
        elapsed = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == SERVED_MODEL
        call = _call_named(body["choices"][0]["message"])
        assert "get_order_status" in call and "ORD-482913" in call, body
        tokens = body["usage"]["completion_tokens"]
        timings = body.get("timings", {})
        print(
            f"one request: {tokens} completion tokens in {elapsed:.2f}s through the proxy "
            f"({tokens / elapsed:.1f} tokens/s end to end; the server's own decode: "
            f"{timings.get('predicted_per_second', float('nan')):.1f} tokens/s, prompt "
            f"{timings.get('prompt_per_second', float('nan')):.1f} tokens/s)"
        )

        with client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=300
        ) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("text/event-stream")
            events = [line[6:] for line in streamed.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        assert len(chunks) > 2
        assert "get_order_status" in _streamed_text(chunks)

        deleted = client.delete(PATH)
        assert deleted.status_code == 200
        stop_s = _wait_gone(pid, ticks, within_s=15)
        print(f"deleted: llama-server {pid} gone {stop_s:.2f}s after the DELETE answered")
        assert client.get("/emulator/state").json()["gpus"]["used"] == 0
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 404


@pytest.fixture
def emulator(real_env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    process = emulator_service(tmp_path / "state.json", free_port(), gpus=2, extra_env=real_env)
    yield process
    process.stop(timeout_s=30)


def test_a_sigkilled_emulator_leaves_no_server_behind(
    emulator: ServiceProcess, tmp_path: Path
) -> None:
    emulator.start()
    with httpx.Client(base_url=emulator.url, timeout=30) as client:
        pid, ticks, _ = _deploy_and_wait(client)
    emulator.kill()
    gone_s = _wait_gone(pid, ticks, within_s=5)
    print(f"\nSIGKILLed emulator: its llama-server {pid} gone after {gone_s:.2f}s")

    # The restarted emulator finds the deployment ready in its state and serves it again with
    # a server of its own; its clean stop stops that one too.
    emulator.start()
    with httpx.Client(base_url=emulator.url, timeout=30) as client:
        assert client.get(PATH).json()["status_details"]["status"] == "ready"
        answer = client.post("/v1/chat/completions", json=CHAT, timeout=300)
        assert answer.status_code == 200, answer.text
        new_pid, new_ticks, _ = _wait_ready(client, time.monotonic())
    assert (new_pid, new_ticks) != (pid, ticks)
    # uvicorn shuts down in order, then re-raises the SIGTERM it caught.
    assert emulator.stop(timeout_s=30) in (0, -signal.SIGTERM)
    _wait_gone(new_pid, new_ticks, within_s=1)  # stopped by the shutdown, before it exited
    run_dir = tmp_path / "state.llama"
    assert not list(run_dir.glob("*.pid"))
