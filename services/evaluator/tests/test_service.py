"""The service's reactions to its inputs, on an in-memory store: deterministic evaluations,
repeated triggers, failed customizations and cancellation, with the events they publish."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.events import (
    CustomizationDone,
    CustomizationError,
    CustomizationErrorKind,
    EvalDone,
    EvalErrorKind,
    NimUp,
    RunCancelled,
)
from flywheel_contracts.examples import EXAMPLES
from flywheel_contracts.run_config import (
    CandidateConfig,
    EvalType,
    EvaluationConfig,
    ExternalEndpoint,
)
from flywheel_contracts.runtime.testing import RecordedEvents
from flywheel_evaluator.events import EvaluationEvents
from flywheel_evaluator.models import TERMINAL, EvaluationJob, JobStatus, evaluation_id
from flywheel_evaluator.outbox import Outbox
from flywheel_evaluator.service import EvaluatorService

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, tzinfo=UTC)


class MemoryStore:
    def __init__(self) -> None:
        self.jobs: dict[str, EvaluationJob] = {}
        self.cancelled_runs: set[UUID] = set()

    async def create(self, job: EvaluationJob) -> bool:
        if job.id in self.jobs:
            return False
        self.jobs[job.id] = job
        return True

    async def mark_run_cancelled(self, run_id: UUID, at: datetime) -> None:
        self.cancelled_runs.add(run_id)

    async def is_run_cancelled(self, run_id: UUID) -> bool:
        return run_id in self.cancelled_runs

    async def live_jobs_of_run(self, run_id: UUID) -> list[EvaluationJob]:
        return [j for j in self.jobs.values() if j.run_id == run_id and j.status not in TERMINAL]

    async def cancel(self, job_id: str, outcome: dict[str, Any], at: datetime) -> bool:
        job = self.jobs[job_id]
        if job.status in TERMINAL:
            return False
        self.jobs[job_id] = job.model_copy(
            update={"status": JobStatus.CANCELLED, "outcome": outcome, "finished_at": at}
        )
        return True

    async def unpublished(
        self, run_id: UUID | None = None, limit: int = 100
    ) -> list[EvaluationJob]:
        return [
            j
            for j in self.jobs.values()
            if j.status in TERMINAL and not j.published and run_id in (None, j.run_id)
        ][:limit]

    async def mark_published(self, job_id: str) -> None:
        self.jobs[job_id] = self.jobs[job_id].model_copy(update={"published": True})


class Recorder(RecordedEvents):
    """The worker and backend ports, and the published events."""

    def __init__(self) -> None:
        super().__init__("evaluator")
        self.wakes = 0
        self.outbox: Outbox | None = None
        self.aborted: list[UUID] = []
        self.abandoned: list[str] = []

    def wake(self) -> None:
        self.wakes += 1

    async def abort_run(self, run_id: UUID) -> None:
        self.aborted.append(run_id)

    async def evaluate(self, ctx: Any) -> Any:
        raise AssertionError("the service never evaluates")

    async def abandon(self, job: EvaluationJob) -> None:
        self.abandoned.append(job.id)

    def done(self) -> list[EvalDone]:
        return [e.payload for e in self.published if isinstance(e.payload, EvalDone)]


def setup() -> tuple[EvaluatorService, MemoryStore, Recorder]:
    store, recorder = MemoryStore(), Recorder()
    recorder.outbox = Outbox(store, EvaluationEvents(recorder.new_event, recorder.publish))
    service = EvaluatorService(store, recorder, recorder, clock=lambda: NOW)
    return service, store, recorder


async def woken_worker_flushes(recorder: Recorder) -> None:
    """What the worker does first when woken: publish the recorded outcomes."""
    assert recorder.outbox is not None
    await recorder.outbox.flush()


def nim_up(run_id: UUID, *types: EvalType) -> Envelope[NimUp]:
    example: NimUp = EXAMPLES["nim.up"].payload
    context = example.context
    if types:
        config = context.config.model_copy(
            update={"evaluation": EvaluationConfig(eval_types=types)}
        )
        context = context.model_copy(update={"config": config})
    return new_event(
        example.model_copy(update={"context": context}), producer="nim-manager", run_id=run_id
    )


def customization_done(
    run_id: UUID, error: CustomizationError | None = None
) -> Envelope[CustomizationDone]:
    example: CustomizationDone = EXAMPLES["customization.done"].payload
    changes: dict[str, Any] = {"error": error, "customized_model": None} if error else {}
    return new_event(example.model_copy(update=changes), producer="customizer", run_id=run_id)


async def test_nim_up_records_base_and_icl_once() -> None:
    service, store, recorder = setup()
    run_id = uuid4()
    await service.on_nim_up(nim_up(run_id))
    candidate = "meta/llama-3.2-1b-instruct"
    assert set(store.jobs) == {
        evaluation_id(run_id, candidate, t) for t in (EvalType.BASE, EvalType.ICL)
    }
    base = store.jobs[evaluation_id(run_id, candidate, EvalType.BASE)]
    icl = store.jobs[evaluation_id(run_id, candidate, EvalType.ICL)]
    assert base.dataset.name.startswith("flywheel-eval-") and icl.dataset.name.startswith(
        "flywheel-icl-"
    )
    assert base.status is JobStatus.PENDING and base.target_model == candidate
    assert recorder.wakes == 2
    # A redelivery, or a new nim.up for the same candidate of the run, changes nothing.
    await service.on_nim_up(nim_up(run_id))
    assert len(store.jobs) == 2 and recorder.wakes == 2
    assert recorder.published == []


async def test_only_the_requested_types_are_recorded() -> None:
    service, store, _ = setup()
    run_id = uuid4()
    await service.on_nim_up(nim_up(run_id, EvalType.ICL))
    (job,) = store.jobs.values()
    assert job.eval_type is EvalType.ICL


async def test_customized_evaluation_targets_the_adapter() -> None:
    service, store, _ = setup()
    run_id = uuid4()
    event = customization_done(run_id)
    await service.on_customization_done(event)
    (job,) = store.jobs.values()
    assert job.eval_type is EvalType.CUSTOMIZED
    assert job.target_model == event.payload.customized_model
    assert job.dataset == event.payload.context.datasets.eval


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (CustomizationErrorKind.TRAINING_FAILED, EvalErrorKind.CUSTOMIZATION_FAILED),
        (CustomizationErrorKind.CANCELLED, EvalErrorKind.CANCELLED),
    ],
)
async def test_failed_customization_ends_the_customized_evaluation(
    kind: CustomizationErrorKind, expected: EvalErrorKind
) -> None:
    service, store, recorder = setup()
    run_id = uuid4()
    event = customization_done(run_id, CustomizationError(kind=kind, message="loss diverged"))
    await service.on_customization_done(event)
    await service.on_customization_done(event)
    # The handler records the outcome and wakes the worker; it never waits on Kafka.
    assert recorder.published == []
    assert recorder.wakes == 1
    await woken_worker_flushes(recorder)
    (done,) = recorder.done()
    assert done.error is not None and done.error.kind is expected
    assert done.eval_type is EvalType.CUSTOMIZED and done.job_id is None
    assert recorder.published[0].causation_id == event.event_id
    (job,) = store.jobs.values()
    assert job.published and job.status in TERMINAL


async def test_cancel_ends_live_evaluations_and_later_triggers() -> None:
    service, store, recorder = setup()
    run_id, other_run = uuid4(), uuid4()
    await service.on_nim_up(nim_up(run_id))
    await service.on_nim_up(nim_up(other_run))
    cancel = new_event(RunCancelled(reason="stop"), producer="cli", run_id=run_id)
    await service.on_run_cancelled(cancel)
    assert recorder.published == []
    await woken_worker_flushes(recorder)
    done = recorder.done()
    assert {d.eval_type for d in done} == {EvalType.BASE, EvalType.ICL}
    assert all(d.error is not None and d.error.kind is EvalErrorKind.CANCELLED for d in done)
    assert all(d.error is not None and d.error.message == "stop" for d in done)
    assert recorder.aborted == [run_id]
    assert len(recorder.abandoned) == 2
    assert {j.status for j in store.jobs.values() if j.run_id == other_run} == {JobStatus.PENDING}
    # The adapter finishing afterwards is recorded as cancelled and never started.
    await service.on_customization_done(customization_done(run_id))
    await woken_worker_flushes(recorder)
    late = recorder.done()[-1]
    assert late.eval_type is EvalType.CUSTOMIZED
    assert late.error is not None and late.error.kind is EvalErrorKind.CANCELLED
    # Four jobs recorded, two cancelled, one recorded cancelled: each woke the worker.
    assert recorder.wakes == 7
    # A repeated cancel records, wakes and publishes nothing new.
    count = len(recorder.published)
    await service.on_run_cancelled(cancel)
    await woken_worker_flushes(recorder)
    assert (len(recorder.published), recorder.wakes) == (count, 7)


async def test_an_external_candidates_evaluations_keep_its_endpoint_and_the_compat_choice() -> None:
    service, store, _ = setup()
    run_id = uuid4()
    example: NimUp = EXAMPLES["nim.up"].payload
    endpoint = ExternalEndpoint(
        base_url="https://llm.example.com/v1", model="qwen2.5-7b", api_key="openrouter"
    )
    candidate = CandidateConfig(model_name="qwen/qwen2.5-7b", endpoint=endpoint)
    evaluation = EvaluationConfig(eval_types=(EvalType.BASE, EvalType.ICL), tool_schema_compat=True)
    context = example.context.model_copy(
        update={"config": example.context.config.model_copy(update={"evaluation": evaluation})}
    )
    deployment = example.deployment.model_copy(
        update={"base_url": endpoint.base_url, "model_id": candidate.served_model}
    )
    up = example.model_copy(
        update={"candidate": candidate, "deployment": deployment, "context": context}
    )
    await service.on_nim_up(new_event(up, producer="nim-manager", run_id=run_id))
    jobs = list(store.jobs.values())
    assert {j.eval_type for j in jobs} == {EvalType.BASE, EvalType.ICL}
    for job in jobs:
        assert job.external and job.endpoint == endpoint
        assert (job.base_url, job.target_model) == ("https://llm.example.com/v1", "qwen2.5-7b")
        assert job.tool_schema_compat
    # A deployed candidate's evaluations have no endpoint, and compat off by default.
    await service.on_nim_up(nim_up(uuid4()))
    deployed = [j for j in store.jobs.values() if j.run_id != run_id]
    assert deployed and all(not j.external and not j.tool_schema_compat for j in deployed)


def test_an_evaluation_recorded_before_external_endpoints_still_reads() -> None:
    """Mongo documents written by an older evaluator have neither field."""
    example: NimUp = EXAMPLES["nim.up"].payload
    old = {
        "id": "eval-old",
        "run_id": str(uuid4()),
        "candidate_model": "meta/llama-3.2-1b-instruct",
        "eval_type": "base",
        "target_model": "meta/llama-3.2-1b-instruct",
        "base_url": "http://nim.test/v1",
        "dataset": example.context.datasets.eval.model_dump(mode="json"),
        "workload_type": "tool_calling",
        "judge_model": None,
        "timeout_seconds": 60,
        "limit": 100,
        "cause": "{}",
        "created_at": NOW,
    }
    job = EvaluationJob.model_validate(old)
    assert job.endpoint is None and not job.external and not job.tool_schema_compat
