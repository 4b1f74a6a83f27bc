"""Acceptance 1 against the shared emulator: `nim.up` -> started, progress in order, done with a
customized model the emulator then serves; and a job a crashed instance already created is
adopted on redelivery instead of created twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import CustomizationDone, NimUp
from flywheel_contracts.runtime import Publisher
from flywheel_contracts.runtime.nmp.testing.sdk import customization_jobs
from flywheel_customizer.app import create_app
from flywheel_customizer.clients.nmp import JOB_KEY_FIELD, NmpTraining
from flywheel_customizer.jobs import CustomizationRecord, name_scope
from flywheel_customizer.ports import JobRequest
from flywheel_customizer.repository import MongoCustomizations
from flywheel_customizer.testing.events import SMALL_MODEL, nim_up
from flywheel_customizer.testing.kafka import CUSTOMIZATION_EVENTS, EventReader
from flywheel_customizer.testing.nmp import NmpWorkspace
from flywheel_customizer.testing.stack import Sandbox
from flywheel_nmp_emulator.testing import Splits

pytestmark = pytest.mark.integration

TRAIN_DATASET = "flywheel-train-customizer-flow"
Record = dict[str, Any]


@pytest.fixture
async def workspace(
    sandbox: Sandbox, training_files: dict[str, list[Record]]
) -> AsyncIterator[NmpWorkspace]:
    async with NmpWorkspace(sandbox.nmp_settings()) as nmp:
        await nmp.upload_dataset(TRAIN_DATASET, training_files)
        await nmp.deploy(SMALL_MODEL)
        nmp.forget_later(config_of=SMALL_MODEL)
        yield nmp


def _nim_up(sandbox: Sandbox) -> Envelope[NimUp]:
    return nim_up(
        namespace=sandbox.namespace, train_dataset=TRAIN_DATASET, base_url=f"{sandbox.nmp_url}/v1"
    )


async def _customize(
    sandbox: Sandbox, publisher: Publisher, event: Envelope[NimUp]
) -> list[Envelope[Any]]:
    """Run the customizer in this process until `event`'s customization succeeded."""
    app = create_app(sandbox.settings())
    async with app.router.lifespan_context(app):
        topics = [sandbox.topic(name) for name in CUSTOMIZATION_EVENTS]
        with EventReader(sandbox.kafka_bootstrap, topics) as reader:
            await publisher.publish(event)

            def finished() -> bool:
                # The last progress (100%) comes before done, but on another topic: read both.
                progress = reader.of_run(event.run_id, "customization.progress")
                return bool(reader.of_run(event.run_id, "customization.done")) and any(
                    e.payload.percent == 100 for e in progress
                )

            await reader.wait_for(finished)
    return reader.of_run(event.run_id)


async def _jobs_named(sandbox: Sandbox, name: str) -> list[dict[str, object]]:
    """The namespace's jobs carrying `name` as their key, as the official SDK lists them."""
    jobs = await customization_jobs(sandbox.nmp_url, sandbox.namespace)
    return [job for job in jobs if _key(job) == name]


def _key(job: dict[str, object]) -> object:
    fields = job.get("custom_fields")
    return fields.get(JOB_KEY_FIELD) if isinstance(fields, dict) else None


async def test_customization_ends_with_a_served_model(
    sandbox: Sandbox, publisher: Publisher, workspace: NmpWorkspace, router_splits: Splits
) -> None:
    event = _nim_up(sandbox)

    events = await _customize(sandbox, publisher, event)

    # Events of one instant (a fast emulator) are told apart by their order in the lifecycle:
    # they come from three topics, read in no particular order.
    lifecycle = {"customization.started": 0, "customization.progress": 1, "customization.done": 2}
    started, *progress, done = sorted(
        events, key=lambda e: (e.occurred_at, lifecycle[e.event_type])
    )
    assert started.event_type == "customization.started"
    assert progress and {e.event_type for e in progress} == {"customization.progress"}
    percents = [e.payload.percent for e in progress]
    assert percents == sorted(percents) and percents[-1] == 100
    outcome: CustomizationDone = done.payload
    assert outcome.ok and outcome.customized_model is not None, outcome.error
    workspace.forget_later(model=outcome.customized_model)
    assert outcome.customized_model == started.payload.output_model
    assert outcome.job_id == started.payload.job_id
    assert outcome.deployment == event.payload.deployment
    assert outcome.epochs_completed == event.payload.context.config.training.epochs

    record = router_splits.eval[0]["request"]
    answer = await workspace.nmp.nim.chat_completions(
        outcome.customized_model,
        record["messages"],
        tools=record["tools"],
        tool_choice="required",
    )
    assert answer.choices[0].message.tool_calls, "the customized model answers with a tool call"
    record_name = CustomizationRecord.from_nim_up(event, datetime.now(UTC)).job_name
    (job,) = await _jobs_named(sandbox, record_name)
    assert (job["id"], job["status"]) == (outcome.job_id, "completed")


async def test_job_created_before_a_crash_is_adopted_on_redelivery(
    sandbox: Sandbox, publisher: Publisher, workspace: NmpWorkspace
) -> None:
    # What a customizer killed between NMP's answer to the job POST and its record update
    # leaves behind: a record noting the attempt, and the job in NMP.
    event = _nim_up(sandbox)
    assert event.run_id is not None
    now = datetime.now(UTC)
    record = CustomizationRecord.from_nim_up(event, now).model_copy(
        update={"submit_attempted_at": now}
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(sandbox.mongo_url, tz_aware=True)
    try:
        assert await MongoCustomizations(mongo[sandbox.database], lambda: now).add(record)
    finally:
        await mongo.close()
    training = NmpTraining(sandbox.nmp_settings())
    try:
        context = event.payload.context
        orphan = await training.submit(
            JobRequest(
                name_scope=name_scope(event.run_id, context.config.workload_id),
                candidate=event.payload.candidate,
                training=context.config.training,
                train_dataset=TRAIN_DATASET,
            )
        )
    finally:
        await training.aclose()

    events = await _customize(sandbox, publisher, event)

    done: CustomizationDone = next(
        e.payload for e in events if e.event_type == "customization.done"
    )
    assert done.ok and done.job_id == orphan.id and done.customized_model == orphan.output_model
    workspace.forget_later(model=orphan.output_model)
    assert len(await _jobs_named(sandbox, record.job_name)) == 1
