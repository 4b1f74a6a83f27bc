"""Real LoRA training's job lifecycle with stand-ins (fake_lora_trainer.py for the trainer venv's
Python, fake_llama_server.py for llama-server): a customization job of the real model follows
its trainer's steps and losses, converts, registers its adapter and is served under its model
id; cancelling kills the trainer and frees its GPUs; a trainer that fails fails its job with its
log; a SIGKILLed emulator leaves no trainer behind and fails the job it lost. The real trainer's
own tests are in deploy/local/tests/test_emulator_real_training.py (marker real_training)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_nmp_emulator.app import create_app
from flywheel_nmp_emulator.config import RealBackend, Settings
from flywheel_nmp_emulator.real.process import start_ticks
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.testing import (
    deployment_body,
    emulator_service,
    free_port,
    poll,
    start_customization,
    training_record,
)

pytestmark = pytest.mark.integration

REAL = "qwen/qwen2.5-coder-0.5b-instruct"
OUTPUT = "dfwbp/customized-qwen-qwen2.5-coder-0.5b-instruct"
STEPS = 6


def _executable(path: Path, source: Path) -> Path:
    path.write_text(f"#!{sys.executable}\n{source.read_text()}")
    path.chmod(0o755)
    return path


@pytest.fixture
def real(tmp_path: Path) -> RealBackend:
    here = Path(__file__).parent
    llama_cpp = tmp_path / "llama.cpp"
    llama_cpp.mkdir()
    (llama_cpp / "convert_lora_to_gguf.py").write_text("")
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    return RealBackend(
        enabled=True,
        llama_server=_executable(tmp_path / "llama-server", here / "fake_llama_server.py"),
        model_path=model,
        run_dir=tmp_path / "run",
        ready_timeout_s=15,
        stop_timeout_s=3,
        trainer_python=_executable(tmp_path / "python", here / "fake_lora_trainer.py"),
        llama_cpp_source=llama_cpp,
        max_train_steps=STEPS,
        train_niceness=0,
    )


@asynccontextmanager
async def emulator(real: RealBackend) -> AsyncIterator[tuple[httpx.AsyncClient, Emulator]]:
    app = create_app(Settings(gpus=2, real=real))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nmp") as client:
            yield client, app.state.emulator


async def _job(client: httpx.AsyncClient, traffic: list[dict[str, Any]]) -> dict[str, Any]:
    train = [training_record(r) for r in traffic[:40]]
    return await start_customization(client, REAL, OUTPUT, train)


def _gone(pid: int, ticks: int | None, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while start_ticks(pid) == ticks:
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.02)


async def test_a_job_of_the_real_model_trains_converts_and_is_served(
    real: RealBackend, router_traffic: list[dict[str, Any]]
) -> None:
    async with emulator(real) as (client, emu):
        await client.post("/v1/deployment/model-deployments", json=deployment_body(REAL))
        job = await _job(client, router_traffic)
        path = f"/v1/customization/jobs/{job['id']}/status"
        seen: list[dict[str, Any]] = []

        def done(body: dict[str, Any]) -> bool:
            seen.append(body)
            return body["status"] in ("completed", "failed")

        status = await poll(client, path, done, within_s=30)
        assert status["status"] == "completed", status["status_logs"]
        # The capped plan: batch 1, STEPS steps, not 2 epochs of 40 records at batch 16.
        assert status["steps_completed"] == STEPS
        assert status["steps_per_epoch"] == 40
        assert status["epochs_completed"] == 0
        assert status["percentage_done"] == 100.0
        curve = status["metrics"]["metrics"]["train_loss"]
        assert [point["step"] for point in curve] == list(range(1, STEPS + 1))
        assert status["train_loss"] == pytest.approx(2.0 / STEPS)
        running = status["status_logs"][0]["detail"]
        assert "real LoRA training" in running and "capped by the laptop profile" in running
        # Progress was seen between the start and the end.
        assert any(0 < b.get("steps_completed", 0) < STEPS for b in seen)
        model_id = f"{OUTPUT}@{job['id']}"
        adapter = emu.state.models[model_id].lora_gguf
        assert adapter is not None
        assert (await asyncio.to_thread(Path(adapter).read_bytes)).startswith(b"GGUF")
        # The base deployment's server restarts with the adapter and answers for the model.
        chat = {"model": model_id, "messages": [{"role": "user", "content": "hi"}]}
        answer = await client.post("/v1/chat/completions", json=chat, timeout=30)
        assert answer.status_code == 200, answer.text
        received = json.loads(answer.json()["choices"][0]["message"]["content"])
        assert received["loras"] == [adapter]
        assert received["lora"] == [{"id": 0, "scale": 1.0}]
        # The trainer saw the examples in the chat format and the plan's settings.
        config = json.loads((Path(adapter).parent / "config.json").read_text())
        assert (config["total_steps"], config["batch_size"], config["lora_rank"]) == (STEPS, 1, 32)
        first = json.loads((Path(adapter).parent / "examples.jsonl").read_text().splitlines()[0])
        assert first["completion"].startswith('<tool_call>\n{"name": ')


async def _running_trainer(
    client: httpx.AsyncClient, emu: Emulator, traffic: list[dict[str, Any]]
) -> tuple[dict[str, Any], int, int | None]:
    """A job whose trainer runs: the job, its trainer's pid and start time."""
    job = await _job(client, traffic)
    path = f"/v1/customization/jobs/{job['id']}/status"
    await poll(client, path, lambda b: b["status"] == "running", within_s=10)
    assert emu.training is not None
    run = emu.training.get(job["id"])
    assert run is not None and run.process.pid is not None
    return job, run.process.pid, start_ticks(run.process.pid)


async def test_cancelling_kills_the_trainer_and_frees_its_gpus(
    real: RealBackend, router_traffic: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trainer that ignores SIGTERM: the grace ends in SIGKILL of its group.
    monkeypatch.setenv("FAKE_TRAIN_STEP_S", "30")
    monkeypatch.setenv("FAKE_TRAIN_MODE", "hang")
    async with emulator(real) as (client, emu):
        job, pid, ticks = await _running_trainer(client, emu, router_traffic)
        assert emu.training is not None
        assert emu.gpus.holds(f"customization:{job['id']}")
        cancelled = await client.post(f"/v1/customization/jobs/{job['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        assert not emu.gpus.holds(f"customization:{job['id']}")
        await asyncio.to_thread(_gone, pid, ticks)
        assert emu.training.get(job["id"]) is None
        # Its pid file goes once it is reaped.
        await emu.training.close()
        assert not list((real.run_dir or Path()).glob("*.pid"))


async def test_a_reset_stops_the_trainers(
    real: RealBackend, router_traffic: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRAIN_STEP_S", "30")
    async with emulator(real) as (client, emu):
        _, pid, ticks = await _running_trainer(client, emu, router_traffic)
        assert emu.training is not None
        assert (await client.post("/emulator/reset")).status_code == 200
        await client.get("/emulator/state")  # a tick
        await asyncio.to_thread(_gone, pid, ticks)
        assert emu.training.job_ids() == []


async def test_a_trainer_that_fails_fails_its_job_with_its_log(
    real: RealBackend, router_traffic: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRAIN_MODE", "crash")
    async with emulator(real) as (client, emu):
        job = await _job(client, router_traffic)
        path = f"/v1/customization/jobs/{job['id']}/status"
        status = await poll(client, path, lambda b: b["status"] == "failed", within_s=15)
        detail = status["status_logs"][-1]["detail"]
        assert "training failed (exit 3)" in detail and "out of memory" in detail
        assert not emu.gpus.holds(f"customization:{job['id']}")
        assert emu.state.models[f"{OUTPUT}@{job['id']}"].lora_gguf is None


def _env(real: RealBackend) -> dict[str, str]:
    values = real.model_dump(mode="json", exclude_none=True)
    return {f"NMP_EMULATOR_REAL__{key.upper()}": str(value) for key, value in values.items()}


def test_a_sigkilled_emulator_leaves_no_trainer_and_fails_the_job_it_lost(
    real: RealBackend, tmp_path: Path, router_traffic: list[dict[str, Any]]
) -> None:
    env = {**_env(real), "FAKE_TRAIN_STEP_S": "30"}
    emulator = emulator_service(tmp_path / "state.json", free_port(), gpus=2, extra_env=env)
    emulator.start()
    try:
        job = asyncio.run(_job_over_http(emulator.url, router_traffic))
        with httpx.Client(base_url=emulator.url, timeout=10) as client:
            deadline = time.monotonic() + 15
            while not (trainers := client.get("/emulator/state").json()["real_training"]):
                assert time.monotonic() < deadline, "the trainer did not start"
                time.sleep(0.05)
        pid = trainers[job]["pid"]
        ticks = start_ticks(pid)
        emulator.kill()
        _gone(pid, ticks, within_s=5)  # the parent-death signal: nobody cleaned up
        emulator.start()
        with httpx.Client(base_url=emulator.url, timeout=10) as client:
            status = client.get(f"/v1/customization/jobs/{job}/status").json()
            assert client.get("/emulator/state").json()["real_training"] == {}
        assert status["status"] == "failed"
        assert "emulator restarted" in status["status_logs"][-1]["detail"]
    finally:
        emulator.stop()
    assert not list((real.run_dir or Path()).glob("*.pid"))


async def _job_over_http(base_url: str, traffic: list[dict[str, Any]]) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        job = await _job(client, traffic)
    job_id: str = job["id"]
    return job_id
