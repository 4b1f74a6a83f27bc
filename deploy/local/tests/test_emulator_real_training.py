"""The NMP emulator's real LoRA training with the real model and the real trainer (opt-in:
`make test-real-training`; installs the trainer's venv, PyTorch's CUDA build from PyPI, about
2.8 GB, on first use): a customization job of Qwen2.5-Coder-0.5B trains a few steps in a
subprocess, reports its steps and losses, converts its adapter with llama.cpp's converter and is
served under its model id by llama-server with `--lora`; cancelling kills the trainer and frees
its GPUs; a SIGKILLed emulator leaves no trainer behind and, restarted, fails the job it lost.

Figures (load time, seconds per step, conversion) are printed; run with `-s` to see them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_contracts.runtime.testing import ServiceProcess
from flywheel_contracts.traffic import ROUTER, TrafficConfig, generate_records
from flywheel_localstack.real_model import SERVED_MODEL, emulator_env, install
from flywheel_localstack.real_model.trainer import install_trainer
from flywheel_nmp_emulator.real.process import start_ticks
from flywheel_nmp_emulator.testing import (
    deployment_body,
    emulator_service,
    free_port,
    start_customization,
    tool_call_records,
    training_record,
)

pytestmark = [pytest.mark.real_training, pytest.mark.timeout(1800)]

OUTPUT = "dfwbp/customized-qwen-qwen2.5-coder-0.5b-instruct"
STEPS = 2


@pytest.fixture(scope="module")
def real_env() -> dict[str, str]:
    env = emulator_env(install(), install_trainer(), max_train_steps=STEPS)
    # As the demo runs it: behind whatever else this machine does.
    return {**env, "NMP_EMULATOR_REAL__TRAIN_NICENESS": "19"}


@pytest.fixture
def emulator(real_env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    process = emulator_service(tmp_path / "state.json", free_port(), gpus=2, extra_env=real_env)
    process.start(ready_within_s=60)
    yield process
    process.stop(timeout_s=60)


async def _upload_and_create(base_url: str) -> str:
    traffic = tool_call_records(
        list(generate_records(300, seed=5, config=TrafficConfig(workloads=(ROUTER,))))
    )
    train = [training_record(r) for r in traffic[:24]]
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        job = await start_customization(client, SERVED_MODEL, OUTPUT, train, epochs=1, batch_size=4)
    job_id: str = job["id"]
    return job_id


def _job(emulator: ServiceProcess) -> str:
    return asyncio.run(_upload_and_create(emulator.url))


def _status(client: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/customization/jobs/{job_id}/status").json()
    return body


def _trainer_pid(client: httpx.Client, job_id: str, within_s: float = 60) -> int:
    deadline = time.monotonic() + within_s
    while True:
        runs = client.get("/emulator/state").json().get("real_training", {})
        if job_id in runs and runs[job_id]["pid"]:
            pid: int = runs[job_id]["pid"]
            return pid
        assert time.monotonic() < deadline, "no trainer started"
        time.sleep(0.2)


def _gone(pid: int, ticks: int | None, within_s: float) -> float:
    started = time.monotonic()
    while start_ticks(pid) == ticks:
        assert time.monotonic() - started < within_s, f"process {pid} still runs"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_job_trains_converts_and_its_model_is_served(emulator: ServiceProcess) -> None:
    job_id = _job(emulator)
    with httpx.Client(base_url=emulator.url, timeout=300) as client:
        created = client.post(
            "/v1/deployment/model-deployments", json=deployment_body(SERVED_MODEL)
        )
        assert created.status_code == 200, created.text
        started = time.monotonic()
        seen_steps: set[int] = set()
        while (status := _status(client, job_id))["status"] not in ("completed", "failed"):
            seen_steps.add(status.get("steps_completed") or 0)
            assert time.monotonic() - started < 1500, status
            time.sleep(1)
        assert status["status"] == "completed", status["status_logs"]
        elapsed = time.monotonic() - started
        assert status["steps_completed"] == STEPS
        curve = status["metrics"]["metrics"]["train_loss"]
        assert [p["step"] for p in curve] == list(range(1, STEPS + 1))
        assert all(p["value"] > 0 for p in curve)
        print(f"\ntrained {STEPS} steps, converted and registered in {elapsed:.0f}s: {curve}")
        for log in status["status_logs"]:
            print(f"  {log['message']}: {log['detail']}")
        model_id = f"{OUTPUT}@{job_id}"
        deadline = time.monotonic() + 300
        while True:
            answer = client.post(
                "/v1/chat/completions",
                json={
                    "model": model_id,
                    "messages": [{"role": "user", "content": "Say hi."}],
                    "max_tokens": 8,
                },
            )
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == model_id
        servers = client.get("/emulator/state").json()["real_servers"]
        assert any(model_id in server["adapters"] for server in servers.values())


def test_cancelling_kills_the_trainer_and_frees_its_gpus(emulator: ServiceProcess) -> None:
    job_id = _job(emulator)
    with httpx.Client(base_url=emulator.url, timeout=60) as client:
        pid = _trainer_pid(client, job_id)
        ticks = start_ticks(pid)
        # Wait until it is loading PyTorch for real, not merely forked.
        time.sleep(5)
        assert start_ticks(pid) == ticks
        assert client.get("/emulator/state").json()["gpus"]["used"] == 1
        cancelled = client.post(f"/v1/customization/jobs/{job_id}/cancel").json()
        assert cancelled["status"] == "cancelled"
        assert client.get("/emulator/state").json()["gpus"]["used"] == 0
        seconds = _gone(pid, ticks, within_s=30)
        print(f"\nthe trainer {pid} was gone {seconds:.2f}s after the cancel")
        assert client.get("/emulator/state").json()["real_training"] == {}


def test_a_sigkilled_emulator_leaves_no_trainer_and_fails_the_lost_job(
    emulator: ServiceProcess,
) -> None:
    job_id = _job(emulator)
    with httpx.Client(base_url=emulator.url, timeout=60) as client:
        pid = _trainer_pid(client, job_id)
    ticks = start_ticks(pid)
    time.sleep(5)
    emulator.kill()
    seconds = _gone(pid, ticks, within_s=10)  # the parent-death signal: no clean-up ran
    print(f"\nthe trainer {pid} died {seconds:.2f}s after its emulator's SIGKILL")
    emulator.start(ready_within_s=60)
    with httpx.Client(base_url=emulator.url, timeout=60) as client:
        status = _status(client, job_id)
        assert status["status"] == "failed"
        assert "emulator restarted" in status["status_logs"][-1]["detail"]
        assert client.get("/emulator/state").json()["gpus"]["used"] == 0
