"""Acceptance 3 on a private two-GPU emulator: a job whose training fails and a job that needs
more GPUs than the cluster has end in `customization.done` errors with NMP's detail, and a
cancelled run leaves its job cancelled in NMP."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import CustomizationDone, CustomizationErrorKind, NimUp
from flywheel_contracts.runtime import Publisher
from flywheel_customizer.app import create_app
from flywheel_customizer.testing.events import candidate, nim_up, run_cancelled
from flywheel_customizer.testing.kafka import CUSTOMIZATION_EVENTS, EventReader
from flywheel_customizer.testing.nmp import NmpWorkspace
from flywheel_customizer.testing.stack import FAST_JOBS, Sandbox
from flywheel_nmp_emulator.testing import emulator_process, free_port

pytestmark = pytest.mark.integration

TRAIN_DATASET = "flywheel-train-customizer-failures"
CLUSTER_GPUS = 2
FAILING_MODEL = "meta/llama-3.2-1b-instruct"  # the emulator's fault below matches it
HUNGRY_MODEL = "meta/llama-3.1-8b-instruct"
SLOW_MODEL = "meta/llama-3.2-3b-instruct"
JOBS = FAST_JOBS.model_copy(update={"gpu_wait_timeout_s": 1.0})


@dataclasses.dataclass
class Cluster:
    url: str
    admin: httpx.Client


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    port = free_port()
    state = tmp_path_factory.mktemp("nmp") / "state.json"
    with emulator_process(state, port, gpus=CLUSTER_GPUS) as admin:
        faults = {"fail_customizations": ["llama-3.2-1b"]}
        assert admin.put("/emulator/faults", json=faults).status_code == 200
        yield Cluster(f"http://127.0.0.1:{port}", admin)


@pytest.fixture
async def box(
    sandbox: Sandbox, cluster: Cluster, training_files: dict[str, list[dict[str, Any]]]
) -> AsyncIterator[Sandbox]:
    box = dataclasses.replace(sandbox, nmp_url=cluster.url)
    async with NmpWorkspace(box.nmp_settings()) as nmp:
        await nmp.upload_dataset(TRAIN_DATASET, training_files)
        for model in (FAILING_MODEL, HUNGRY_MODEL, SLOW_MODEL):
            nmp.forget_later(config_of=model)
        yield box


@pytest.fixture
async def reader(box: Sandbox) -> AsyncIterator[EventReader]:
    """The customizer running in this process, and a reader of what it publishes."""
    app = create_app(box.settings(JOBS))
    async with app.router.lifespan_context(app):
        topics = [box.topic(name) for name in CUSTOMIZATION_EVENTS]
        with EventReader(box.kafka_bootstrap, topics) as events:
            yield events


def _nim_up(box: Sandbox, model: str, gpus: int = 1) -> Envelope[NimUp]:
    return nim_up(
        model=candidate(model, gpus=gpus),
        namespace=box.namespace,
        train_dataset=TRAIN_DATASET,
        base_url=f"{box.nmp_url}/v1",
    )


async def _done(reader: EventReader, event: Envelope[NimUp]) -> CustomizationDone:
    (done,) = await _events(reader, event, "customization.done")
    payload: CustomizationDone = done.payload
    return payload


async def _events(
    reader: EventReader, event: Envelope[NimUp], event_type: str
) -> list[Envelope[Any]]:
    await reader.wait_for(lambda: bool(reader.of_run(event.run_id, event_type)))
    return reader.of_run(event.run_id, event_type)


def _job_status(cluster: Cluster, job_id: str | None) -> str:
    status: str = cluster.admin.get(f"/v1/customization/jobs/{job_id}/status").json()["status"]
    return status


async def test_failing_training_reports_nmps_detail(
    box: Sandbox, cluster: Cluster, publisher: Publisher, reader: EventReader
) -> None:
    event = _nim_up(box, FAILING_MODEL)
    await publisher.publish(event)

    done = await _done(reader, event)

    assert done.error is not None and done.customized_model is None
    assert done.error.kind is CustomizationErrorKind.TRAINING_FAILED
    assert (
        done.error.message == "Training failed: the trainer exited with an error (injected fault)"
    )
    assert _job_status(cluster, done.job_id) == "failed"


async def test_job_starved_of_gpus_is_reported_and_cancelled(
    box: Sandbox, cluster: Cluster, publisher: Publisher, reader: EventReader
) -> None:
    event = _nim_up(box, HUNGRY_MODEL, gpus=CLUSTER_GPUS + 2)
    await publisher.publish(event)

    done = await _done(reader, event)

    assert done.error is not None
    assert done.error.kind is CustomizationErrorKind.INSUFFICIENT_GPUS
    assert "NotEnoughResources" in done.error.message
    assert "needs 4 GPU(s) but the cluster has only 2" in done.error.message
    assert _job_status(cluster, done.job_id) == "cancelled", "its place in the GPU queue is freed"


async def test_cancelled_run_leaves_its_job_cancelled(
    box: Sandbox, cluster: Cluster, publisher: Publisher, reader: EventReader
) -> None:
    cluster.admin.put("/emulator/timings", json={"training_seconds_per_epoch": 600})
    try:
        event = _nim_up(box, SLOW_MODEL)
        assert event.run_id is not None
        await publisher.publish(event)
        (started,) = await _events(reader, event, "customization.started")
        assert _job_status(cluster, started.payload.job_id) == "running"

        await publisher.publish(run_cancelled(event.run_id, "stopped by the test"))
        done = await _done(reader, event)
    finally:
        cluster.admin.put("/emulator/timings", json={})

    assert done.error is not None and done.error.kind is CustomizationErrorKind.CANCELLED
    assert "stopped by the test" in done.error.message
    assert done.job_id == started.payload.job_id
    assert _job_status(cluster, done.job_id) == "cancelled"
