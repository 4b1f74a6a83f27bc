"""Acceptance 2: SIGKILL of the customizer process mid-training, then a restart: polling
resumes from Mongo, no second job appears in NMP, and the run still gets its
`customization.done`. A private emulator trains slowly enough to kill the customizer mid-way."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_contracts.events import CustomizationDone
from flywheel_contracts.runtime import Publisher
from flywheel_contracts.runtime.nmp.testing.sdk import customization_jobs
from flywheel_customizer.testing.events import SMALL_MODEL, nim_up
from flywheel_customizer.testing.kafka import CUSTOMIZATION_EVENTS, EventReader
from flywheel_customizer.testing.nmp import NmpWorkspace
from flywheel_customizer.testing.process import customizer_process
from flywheel_customizer.testing.stack import Sandbox
from flywheel_nmp_emulator.testing import emulator_process, free_port

pytestmark = pytest.mark.integration

TRAIN_DATASET = "flywheel-train-customizer-restart"
SECONDS_PER_EPOCH = 4.0  # two epochs: long enough to kill the customizer mid-training


@pytest.fixture(scope="module")
def slow_nmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    state = tmp_path_factory.mktemp("nmp") / "state.json"
    with emulator_process(state, port) as admin:
        timings = {"training_seconds_per_epoch": SECONDS_PER_EPOCH}
        assert admin.put("/emulator/timings", json=timings).status_code == 200
        yield f"http://127.0.0.1:{port}"


async def test_killed_customizer_resumes_without_a_second_job(
    sandbox: Sandbox,
    slow_nmp: str,
    publisher: Publisher,
    training_files: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    box = dataclasses.replace(sandbox, nmp_url=slow_nmp)
    event = nim_up(namespace=box.namespace, train_dataset=TRAIN_DATASET, base_url=f"{slow_nmp}/v1")
    async with NmpWorkspace(box.nmp_settings()) as nmp:
        await nmp.upload_dataset(TRAIN_DATASET, training_files)
        await nmp.deploy(SMALL_MODEL)
        first = customizer_process(box.environment(), tmp_path / "customizer-1.log")
        second = customizer_process(box.environment(), tmp_path / "customizer-2.log")
        try:
            await asyncio.to_thread(first.start)
            topics = [box.topic(name) for name in CUSTOMIZATION_EVENTS]
            with EventReader(box.kafka_bootstrap, topics) as reader:
                await publisher.publish(event)

                def training_under_way() -> bool:
                    progress = reader.of_run(event.run_id, "customization.progress")
                    return any(0 < e.payload.percent < 50 for e in progress)

                await reader.wait_for(training_under_way)
                first.kill()
                (job,) = await customization_jobs(slow_nmp, box.namespace)
                assert job["status"] == "running", "killed mid-training"

                await asyncio.to_thread(second.start)

                def finished() -> bool:
                    # The 100% progress precedes done, but on another topic: wait for both.
                    progress = reader.of_run(event.run_id, "customization.progress")
                    return bool(reader.of_run(event.run_id, "customization.done")) and any(
                        e.payload.percent == 100 for e in progress
                    )

                await reader.wait_for(finished, timeout_s=90)
        finally:
            second.stop()
            first.stop()

        (job,) = await customization_jobs(
            slow_nmp, box.namespace
        )  # still one job: the restart resumed it
        (started,) = {
            e.event_id: e for e in reader.of_run(event.run_id, "customization.started")
        }.values()
        done: CustomizationDone = reader.of_run(event.run_id, "customization.done")[0].payload
        assert done.ok and done.job_id == job["id"] == started.payload.job_id, done.error
        assert done.customized_model is not None
        nmp.forget_later(config_of=SMALL_MODEL, model=done.customized_model)
        percents = [
            e.payload.percent for e in reader.of_run(event.run_id, "customization.progress")
        ]
        assert percents == sorted(percents) and percents[-1] == 100


async def test_customizer_killed_between_its_post_and_its_record_leaves_exactly_one_job(
    sandbox: Sandbox,
    slow_nmp: str,
    publisher: Publisher,
    training_files: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    """NMP creates the job but holds its answer; the customizer is SIGKILLed while it waits,
    so its record never learns the job id. The restarted one must adopt that job."""
    box = dataclasses.replace(sandbox, nmp_url=slow_nmp)
    event = nim_up(namespace=box.namespace, train_dataset=TRAIN_DATASET, base_url=f"{slow_nmp}/v1")
    late_create = {
        "endpoints": {
            "/v1/customization/jobs": {
                "late_answer_rate": 1.0,
                "late_answer_seconds": 60.0,
                "methods": ["POST"],
            }
        }
    }
    async with (
        NmpWorkspace(box.nmp_settings()) as nmp,
        httpx.AsyncClient(base_url=slow_nmp) as admin,
    ):
        await nmp.upload_dataset(TRAIN_DATASET, training_files)
        await nmp.deploy(SMALL_MODEL)
        assert (await admin.put("/emulator/faults", json=late_create)).status_code == 200
        first = customizer_process(box.environment(), tmp_path / "customizer-1.log")
        second = customizer_process(box.environment(), tmp_path / "customizer-2.log")
        try:
            await asyncio.to_thread(first.start)
            topics = [box.topic(name) for name in CUSTOMIZATION_EVENTS]
            with EventReader(box.kafka_bootstrap, topics) as reader:
                await publisher.publish(event)
                deadline = asyncio.get_running_loop().time() + 60
                while not await customization_jobs(slow_nmp, box.namespace):
                    assert asyncio.get_running_loop().time() < deadline, "no job was created"
                    await asyncio.sleep(0.1)
                first.kill()  # NMP has the job; the customizer never got its id
                assert (await admin.put("/emulator/faults", json={})).status_code == 200
                assert not reader.of_run(event.run_id, "customization.started")

                await asyncio.to_thread(second.start)
                await reader.wait_for(
                    lambda: bool(reader.of_run(event.run_id, "customization.done")), timeout_s=90
                )
        finally:
            second.stop()
            first.stop()
            await admin.put("/emulator/faults", json={})

        (job,) = await customization_jobs(slow_nmp, box.namespace)
        done: CustomizationDone = reader.of_run(event.run_id, "customization.done")[0].payload
        assert done.ok and done.job_id == job["id"], done.error
        assert done.customized_model is not None
        nmp.forget_later(config_of=SMALL_MODEL, model=done.customized_model)
