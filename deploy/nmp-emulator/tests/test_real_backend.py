"""The real backend's processes and proxy with a stand-in server (fake_llama_server.py): a
deployment of the real model starts a process and is ready once it answers `/health`, chat
requests reach it (streaming too), deletion, reset and shutdown stop it, a server that fails
to start fails its deployment with its log, a registered adapter restarts the server with it,
and no process outlives a SIGKILLed emulator. The real model's own tests are in
deploy/local/tests/test_emulator_real_model.py (marker real_model)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_nmp_emulator.app import create_app
from flywheel_nmp_emulator.config import RealBackend, Settings
from flywheel_nmp_emulator.real.adapters import register_adapter
from flywheel_nmp_emulator.real.process import PidFile, start_ticks
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import CustomizedModel
from flywheel_nmp_emulator.testing import deployment_body, poll, tool_calling_config

pytestmark = pytest.mark.integration

REAL = "qwen/qwen2.5-coder-0.5b-instruct"
DEPLOYMENT = "dfwbp/qwen-qwen2.5-coder-0.5b-instruct"
PATH = f"/v1/deployment/model-deployments/{DEPLOYMENT}"
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.fixture
def fake_server(tmp_path: Path) -> Path:
    """The stand-in as an executable, run by this interpreter."""
    script = tmp_path / "llama-server"
    source = (Path(__file__).parent / "fake_llama_server.py").read_text()
    script.write_text(f"#!{sys.executable}\n{source}")
    script.chmod(0o755)
    return script


@pytest.fixture
def settings(fake_server: Path, tmp_path: Path) -> Settings:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    real = RealBackend(
        enabled=True,
        llama_server=fake_server,
        model_path=model,
        run_dir=tmp_path / "run",
        ready_timeout_s=15,
        stop_timeout_s=3,
    )
    return Settings(gpus=2, real=real)


@asynccontextmanager
async def emulator(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Emulator]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nmp") as client:
            yield client, app.state.emulator


def _status(body: dict[str, Any]) -> str:
    status: str = body["status_details"]["status"]
    return status


def _until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def _wait_gone(pid: int, ticks: int | None, within_s: float = 10.0) -> None:
    _until(lambda: start_ticks(pid) != ticks, within_s)


async def _gone(pid: int, ticks: int | None) -> None:
    # In a thread: the emulator under test runs on this loop and must keep ticking.
    await asyncio.to_thread(_wait_gone, pid, ticks)


async def _ready(client: httpx.AsyncClient, emu: Emulator) -> tuple[int, int | None]:
    created = await client.post("/v1/deployment/model-deployments", json=deployment_body(REAL))
    assert created.status_code == 200, created.text
    await poll(client, PATH, lambda b: _status(b) == "ready", within_s=15)
    assert emu.real is not None
    server = emu.real.get(DEPLOYMENT)
    assert server is not None and server.pid is not None
    return server.pid, start_ticks(server.pid)


async def test_a_deployment_runs_a_server_until_it_is_deleted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_LOAD_S", "0.5")
    async with emulator(settings) as (client, emu):
        created = await client.post("/v1/deployment/model-deployments", json=deployment_body(REAL))
        assert created.status_code == 200
        starting = (await client.get(PATH)).json()
        # Pending, not ready, while the model loads: readiness is the server's health.
        assert _status(starting) == "pending"
        assert starting["status_details"]["description"].startswith("starting llama-server")
        assert (await client.get("/v1/models")).json()["data"][0]["id"] != REAL
        ready = await poll(client, PATH, lambda b: _status(b) == "ready", within_s=15)
        assert "llama-server pid" in ready["status_details"]["description"]
        assert emu.real is not None
        server = emu.real.get(DEPLOYMENT)
        assert server is not None and server.pid is not None
        pid, ticks = server.pid, start_ticks(server.pid)
        assert ticks is not None
        assert (
            (settings.real.run_dir or Path())
            .joinpath(f"{DEPLOYMENT.replace('/', '__')}.pid")
            .exists()
        )
        gpus = (await client.get("/emulator/state")).json()["gpus"]
        assert gpus["used"] == 1

        chat = {"model": REAL, "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS}
        answer = await client.post("/v1/chat/completions", json=chat)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == REAL
        received = json.loads(answer.json()["choices"][0]["message"]["content"])
        # The tools went through, no adapter was applied, and the proxy held the server's key.
        assert received == {"lora": None, "tools": 1, "loras": []}

        streamed = await client.post("/v1/chat/completions", json={**chat, "stream": True})
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [line for line in streamed.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
        assert json.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant"
        usage = (await client.get("/emulator/usage")).json()["chat_completions"]
        assert usage[REAL] == 2

        deleted = await client.delete(PATH)
        assert deleted.status_code == 200
        await _gone(pid, ticks)
        run_dir = settings.real.run_dir or Path()
        # The pid file goes once the process is reaped, a moment after it is gone.
        await asyncio.to_thread(_until, lambda: not list(run_dir.glob("*.pid")))
        assert (await client.get("/emulator/state")).json()["gpus"]["used"] == 0
        gone = await client.post("/v1/chat/completions", json=chat)
        assert gone.status_code == 404


async def test_heuristic_models_answer_beside_the_real_one(settings: Settings) -> None:
    async with emulator(settings) as (client, emu):
        await _ready(client, emu)
        other = "meta/llama-3.2-1b-instruct"
        await client.post("/v1/deployment/model-deployments", json=deployment_body(other))
        await poll(
            client,
            f"/v1/deployment/model-deployments/dfwbp/{other.replace('/', '-')}",
            lambda b: _status(b) == "ready",
        )
        chat = {"model": other, "messages": [{"role": "user", "content": "hello"}]}
        answer = await client.post("/v1/chat/completions", json=chat)
        assert answer.status_code == 200
        assert answer.json()["model"] == other
        # The heuristic path's rules are unchanged: it does not stream.
        refused = await client.post("/v1/chat/completions", json={**chat, "stream": True})
        assert refused.status_code == 400
        assert emu.real is not None and emu.real.deployments() == [DEPLOYMENT]


async def test_a_server_that_fails_to_start_fails_its_deployment_with_its_log(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "crash")
    async with emulator(settings) as (client, emu):
        await client.post("/v1/deployment/model-deployments", json=deployment_body(REAL))
        failed = await poll(client, PATH, lambda b: _status(b) == "failed", within_s=15)
        description = failed["status_details"]["description"]
        assert "llama-server exited with 3 while starting" in description
        assert "failed to load model 'broken.gguf'" in description
        assert (await client.get("/emulator/state")).json()["gpus"]["used"] == 0
        assert emu.real is not None and emu.real.deployments() == []


async def test_reset_and_shutdown_stop_the_servers(settings: Settings) -> None:
    async with emulator(settings) as (client, emu):
        pid, ticks = await _ready(client, emu)
        assert (await client.post("/emulator/reset")).status_code == 200
        await client.get("/emulator/state")  # a tick: the server's deployment is gone
        await _gone(pid, ticks)
        pid, ticks = await _ready(client, emu)
    # The lifespan has ended: every server was stopped before it returned.
    assert start_ticks(pid) != ticks


async def test_a_registered_adapter_is_served_under_its_model_id(
    settings: Settings, tmp_path: Path
) -> None:
    async with emulator(settings) as (client, emu):
        first_pid, first_ticks = await _ready(client, emu)
        customized = "dfwbp/qwen-ft"
        emu.state.models[customized] = CustomizedModel(
            id=customized,
            namespace="dfwbp",
            name="qwen-ft",
            base_model=REAL,
            job_id="job",
            created_at=emu.clock(),
            trained_at=emu.clock(),
        )
        adapter = tmp_path / "qwen-ft.gguf"
        adapter.write_bytes(b"GGUF")
        register_adapter(emu.state, customized, adapter)
        # The next tick restarts the server with the adapter; the request waits for it.
        await client.get("/emulator/state")
        await _gone(first_pid, first_ticks)
        chat = {"model": customized, "messages": [{"role": "user", "content": "hi"}]}
        answer = await client.post("/v1/chat/completions", json=chat)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == customized
        received = json.loads(answer.json()["choices"][0]["message"]["content"])
        assert received["lora"] == [{"id": 0, "scale": 1.0}]
        assert received["loras"] == [str(adapter.resolve())]
        streamed = await client.post("/v1/chat/completions", json={**chat, "stream": True})
        first = next(line for line in streamed.text.splitlines() if line.startswith("data: {"))
        assert json.loads(first[6:])["model"] == customized
        base = await client.post("/v1/chat/completions", json={**chat, "model": REAL})
        assert json.loads(base.json()["choices"][0]["message"]["content"])["lora"] is None


async def test_a_server_that_dies_is_started_again(settings: Settings) -> None:
    async with emulator(settings) as (client, emu):
        pid, ticks = await _ready(client, emu)
        os.kill(pid, signal.SIGKILL)
        await _gone(pid, ticks)
        chat = {"model": REAL, "messages": [{"role": "user", "content": "hi"}]}
        # The request's own tick notices the dead server and starts another; it waits for it.
        answer = await client.post("/v1/chat/completions", json=chat)
        assert answer.status_code == 200, answer.text
        assert _status((await client.get(PATH)).json()) == "ready"
        assert emu.real is not None
        server = emu.real.get(DEPLOYMENT)
        assert server is not None and server.pid != pid
        restarted = [e for e in emu.state.timeline if e.event == "restarted"]
        assert restarted and "exited with -9" in restarted[-1].detail


async def test_evaluation_jobs_refuse_the_real_model_rather_than_fake_it(
    settings: Settings,
) -> None:
    async with emulator(settings) as (client, emu):
        await _ready(client, emu)
        config = tool_calling_config("hf://datasets/dfwbp/eval", "meta/llama-3.3-70b-instruct")
        launched = await client.post(
            "/v1/evaluation/jobs",
            json={"config": config, "target": {"type": "model", "model": REAL}},
        )
        assert launched.status_code == 200, launched.text
        job = await poll(
            client,
            f"/v1/evaluation/jobs/{launched.json()['id']}",
            lambda b: b["status"] in ("completed", "failed"),
        )
        assert job["status"] == "failed"
        assert "served by the real backend" in json.dumps(job)


# -- nothing outlives the emulator -------------------------------------------------------------

_CHILD = """
import asyncio, sys
from pathlib import Path
from flywheel_nmp_emulator.real.process import ServerProcess
cmd = [sys.argv[1], "--port", sys.argv[2], "--alias", "m", "--api-key-file", sys.argv[3]]
process = ServerProcess(cmd, Path(sys.argv[4]) / "s.log", Path(sys.argv[4]) / "s.pid")
process.start()
print(process.pid, flush=True)
asyncio.run(asyncio.sleep(3600))
"""


def test_a_server_dies_with_a_sigkilled_parent(fake_server: Path, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k")
    parent = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(fake_server), "0", str(key), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        ticks = start_ticks(pid)
        assert ticks is not None
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        _wait_gone(pid, ticks, within_s=5)  # the parent-death signal, not a clean-up
    finally:
        parent.kill()
        parent.wait()


async def test_a_survivor_recorded_in_the_run_folder_is_killed_at_start(
    settings: Settings, fake_server: Path, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text("k")
    # A server no parent-death signal guards, as on a host without one.
    survivor = await asyncio.to_thread(
        subprocess.Popen,
        [str(fake_server), "--port", "0", "--alias", "m", "--api-key-file", str(key)],
        start_new_session=True,
    )
    stranger = await asyncio.to_thread(
        subprocess.Popen, [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    try:
        run_dir = settings.real.run_dir
        assert run_dir is not None
        run_dir.mkdir(parents=True)
        ticks = start_ticks(survivor.pid)
        assert ticks is not None
        PidFile(survivor.pid, ticks, str(fake_server)).write(run_dir / "dfwbp__old.pid")
        # A pid file whose process is not the server it names is left alone.
        other = start_ticks(stranger.pid) or 0
        PidFile(stranger.pid, other, str(fake_server)).write(run_dir / "dfwbp__stale.pid")
        async with emulator(settings):
            pass
        assert survivor.wait(timeout=5) == -signal.SIGKILL
        assert stranger.poll() is None
        assert not list(run_dir.glob("*.pid"))
    finally:
        for process in (survivor, stranger):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
