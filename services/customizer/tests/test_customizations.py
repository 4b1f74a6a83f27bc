"""The customizer's logic on fakes: recording `nim.up`, driving jobs to `customization.done`,
never a second job, cancellation, deadlines, and outages of NMP, Mongo and Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import CustomizationDone, CustomizationErrorKind, NimUp
from flywheel_contracts.run_config import TrainingConfig
from flywheel_contracts.runtime.nmp import NmpNotFound
from flywheel_contracts.runtime.testing import ManualClock, eventually
from flywheel_customizer.config import JobSettings
from flywheel_customizer.jobs import NO_ERROR_DETAILS, CustomizationRecord, Phase
from flywheel_customizer.reconciler import Reconciler
from flywheel_customizer.service import CustomizerService
from flywheel_customizer.testing.events import candidate, nim_up, run_cancelled
from flywheel_customizer.testing.fakes import (
    COMPLETED,
    RUNNING_HALF,
    FakeLease,
    FakeTraining,
    InMemoryCustomizations,
    RecordedEvents,
    StatusAnswer,
    recorded_events,
)

pytestmark = pytest.mark.unit

SETTINGS = JobSettings(
    poll_interval_s=1,
    stall_timeout_s=60,
    gpu_wait_timeout_s=30,
    model_sync_timeout_s=120,
    lease_ttl_s=10,
)
STARVED: StatusAnswer = {
    "status": "pending",
    "status_logs": [
        {"message": "NotEnoughResources", "detail": "needs 4 GPU(s) but the cluster has only 2"}
    ],
}


@dataclass
class Harness:
    clock: ManualClock = field(default_factory=ManualClock)
    store: InMemoryCustomizations = field(default_factory=InMemoryCustomizations)
    training: FakeTraining = field(default_factory=FakeTraining)
    events: RecordedEvents = field(default_factory=recorded_events)
    lease: FakeLease = field(default_factory=FakeLease)

    def reconciler(self, settings: JobSettings = SETTINGS) -> Reconciler:
        return Reconciler(
            self.store, self.training, self.events.emit, self.lease, settings, clock=self.clock
        )

    def service(self) -> CustomizerService:
        return CustomizerService(self.store, lambda: None, clock=self.clock)

    async def passes(self, count: int = 1, every_s: float = 1.0) -> None:
        reconciler = self.reconciler()
        for _ in range(count):
            await reconciler.reconcile_once()
            self.clock.advance(every_s)

    def types(self) -> list[str]:
        return [e.event_type for e in self.events.published]

    def done(self) -> CustomizationDone:
        (event,) = self.events.of("customization.done")
        payload: CustomizationDone = event.payload
        return payload

    def record(self) -> CustomizationRecord:
        (record,) = self.store.records.values()
        return record


@pytest.fixture
def h() -> Harness:
    return Harness()


async def _requested(h: Harness, event: Envelope[NimUp] | None = None) -> Envelope[NimUp]:
    event = event or nim_up()
    await h.service().on_nim_up(event)
    return event


async def test_customization_runs_to_done_with_ordered_progress(h: Harness) -> None:
    training = TrainingConfig(epochs=3, batch_size=8, learning_rate=0.0005)
    h.training.script = [
        {"status": "created"},
        {**RUNNING_HALF, "percentage_done": 25.0},
        {**RUNNING_HALF, "percentage_done": 25.0},
        RUNNING_HALF,
        COMPLETED,
    ]
    event = await _requested(h, nim_up(training=training))

    await h.passes(6)

    assert h.types() == [
        "customization.started",
        "customization.progress",
        "customization.progress",
        "customization.progress",
        "customization.done",
    ]
    percents = [e.payload.percent for e in h.events.of("customization.progress")]
    assert percents == [25.0, 50.0, 100.0]
    (job,) = h.training.jobs.values()
    assert job.request.training == training
    assert job.request.train_dataset == event.payload.context.datasets.train.name
    assert event.run_id is not None and event.run_id.hex in job.request.name
    done = h.done()
    assert done.ok and done.customized_model == job.output_model
    assert (done.job_id, done.epochs_completed, done.steps_completed) == (job.id, 2, 20)
    assert done.deployment == event.payload.deployment and done.context == event.payload.context
    assert done.runtime_seconds == 4.0  # submitted at pass 1, finished at pass 5
    assert all(e.causation_id == event.event_id for e in h.events.published)
    assert h.record().done_published and h.training.lookups == 0
    await h.passes(2)
    assert len(h.events.published) == 5, "a finished customization stays quiet"


async def test_candidate_without_customization_is_ignored(h: Harness) -> None:
    await _requested(h, nim_up(model=candidate(enabled=False)))
    await h.passes(2)
    assert h.store.records == {} and h.training.submits == 0


async def test_repeated_nim_up_for_one_candidate_makes_one_job(h: Harness) -> None:
    first = await _requested(h)
    await h.passes(1)
    await _requested(h, first)
    again = nim_up(run_id=first.run_id)  # same run and candidate, another event id
    await _requested(h, again)
    await h.passes(3)
    assert h.training.submits == 1
    assert len(h.events.of("customization.done")) == 1


async def test_lost_post_answer_adopts_the_job_instead_of_posting_again(h: Harness) -> None:
    await _requested(h)
    h.training.lose_next_answer = True
    await h.passes(1)
    assert h.training.submits == 1 and h.events.published == []
    assert h.record().submit_attempted_at is not None

    await h.passes(3)

    (job,) = h.training.jobs.values()
    assert h.training.submits == 1 and h.training.lookups == 1
    assert h.events.of("customization.started")[0].payload.job_id == job.id
    assert h.done().customized_model == job.output_model


async def test_crash_between_post_and_record_resumes_on_another_instance(h: Harness) -> None:
    await _requested(h)
    h.store.break_save_into = Phase.TRAINING  # NMP created the job, the record never learnt it
    await h.reconciler().reconcile_once()
    assert h.training.submits == 1 and h.record().phase is Phase.REQUESTED

    restarted = Harness(clock=h.clock, store=h.store, training=h.training)
    await restarted.passes(3)

    assert h.training.submits == 1
    assert restarted.done().ok and restarted.done().job_id == "cust-000001"


async def test_failed_job_reports_the_nmp_detail(h: Harness) -> None:
    detail = "Training failed: CUDA error: an illegal memory access was encountered"
    h.training.script = [
        RUNNING_HALF,
        {
            "status": "failed",
            "epochs_completed": 1,
            "steps_completed": 12,
            "status_logs": [{"message": "Running"}, {"message": "Failed", "detail": detail}],
        },
    ]
    await _requested(h)
    await h.passes(3)
    error = h.done().error
    assert error is not None
    assert (error.kind, error.message) == (CustomizationErrorKind.TRAINING_FAILED, detail)
    assert h.training.cancels == []


async def test_failed_job_without_detail_says_so(h: Harness) -> None:
    h.training.script = [{"status": "failed", "status_logs": []}]
    await _requested(h)
    await h.passes(2)
    error = h.done().error
    assert error is not None and error.message == NO_ERROR_DETAILS


async def test_job_starved_of_gpus_is_cancelled_and_reported(h: Harness) -> None:
    h.training.script = [STARVED]
    await _requested(h)
    await h.passes(30)
    assert h.events.of("customization.done") == [], "still within gpu_wait_timeout_s"

    await h.passes(2)

    error = h.done().error
    assert error is not None and error.kind is CustomizationErrorKind.INSUFFICIENT_GPUS
    assert "NotEnoughResources: needs 4 GPU(s) but the cluster has only 2" in error.message
    assert h.training.cancels == ["cust-000001"]
    assert h.events.of("customization.progress") == []


async def test_job_without_progress_is_cancelled_as_stalled(h: Harness) -> None:
    h.training.script = [RUNNING_HALF]
    await _requested(h)
    await h.passes(1)
    await h.passes(1, every_s=59)
    await h.passes(1)
    assert h.events.of("customization.done") == []

    await h.passes(1)

    error = h.done().error
    assert error is not None and error.kind is CustomizationErrorKind.STALLED
    assert "no progress for 61s" in error.message
    assert h.training.cancels == ["cust-000001"]


async def test_progress_restarts_the_stall_timer(h: Harness) -> None:
    h.training.script = [
        {**RUNNING_HALF, "percentage_done": 10.0},
        {**RUNNING_HALF, "percentage_done": 20.0},
        {**RUNNING_HALF, "percentage_done": 30.0},
        COMPLETED,
    ]
    await _requested(h)
    await h.passes(4, every_s=50)
    assert h.done().ok


async def test_cancelled_run_cancels_its_training_job(h: Harness) -> None:
    h.training.script = [RUNNING_HALF]
    event = await _requested(h)
    await h.passes(1)
    assert event.run_id is not None
    await h.service().on_run_cancelled(run_cancelled(event.run_id, "operator stop"))

    await h.passes(2)

    assert h.training.cancels == ["cust-000001"]
    error = h.done().error
    assert error is not None and error.kind is CustomizationErrorKind.CANCELLED
    assert "operator stop" in error.message and h.done().job_id == "cust-000001"


async def test_run_cancelled_before_nim_up_creates_no_job(h: Harness) -> None:
    event = nim_up()
    assert event.run_id is not None
    await h.service().on_run_cancelled(run_cancelled(event.run_id))
    await _requested(h, event)
    await h.passes(2)
    assert h.training.submits == 0 and h.training.lookups == 0
    assert h.types() == ["customization.done"]
    done = h.done()
    assert done.job_id is None and done.error is not None
    assert done.error.kind is CustomizationErrorKind.CANCELLED


async def test_cancel_finds_and_cancels_a_job_whose_post_answer_was_lost(h: Harness) -> None:
    event = await _requested(h)
    h.training.lose_next_answer = True
    await h.passes(1)
    assert event.run_id is not None
    await h.service().on_run_cancelled(run_cancelled(event.run_id))
    await h.passes(1)
    assert h.training.cancels == ["cust-000001"] and h.training.submits == 1
    assert h.done().job_id == "cust-000001"


async def test_trained_model_never_served_is_a_sync_failure(h: Harness) -> None:
    h.training.script = [COMPLETED]
    h.training.sync_after_completion = False
    await _requested(h)
    await h.passes(1)
    assert h.record().phase is Phase.SYNCING
    await h.passes(1, every_s=120)
    await h.passes(1)
    error = h.done().error
    assert error is not None and error.kind is CustomizationErrorKind.MODEL_SYNC_FAILED


async def test_sync_waits_until_the_model_is_served(h: Harness) -> None:
    h.training.script = [COMPLETED]
    h.training.sync_after_completion = False
    await _requested(h)
    await h.passes(3, every_s=30)
    assert h.events.of("customization.done") == []
    (job,) = h.training.jobs.values()
    h.training.served.add(job.output_model)
    await h.passes(1)
    assert h.done().customized_model == job.output_model


async def test_job_gone_from_nmp_is_an_internal_error(h: Harness) -> None:
    h.training.script = [RUNNING_HALF]
    await _requested(h)
    await h.passes(1)
    h.training.jobs.clear()
    await h.passes(1)
    error = h.done().error
    assert error is not None and error.kind is CustomizationErrorKind.INTERNAL_ERROR


async def test_job_cancelled_outside_the_run_is_reported_cancelled(h: Harness) -> None:
    h.training.script = [RUNNING_HALF]
    await _requested(h)
    await h.passes(1)
    h.training.jobs["cust-000001"].cancelled = True
    await h.passes(1)
    error = h.done().error
    assert error is not None and error.kind is CustomizationErrorKind.CANCELLED


async def test_job_refused_by_nmp_is_reported_without_a_job(h: Harness) -> None:
    h.training.refuse_submit = NmpNotFound("dataset dfwbp/flywheel-train-test not found")
    await _requested(h)
    await h.passes(1)
    done = h.done()
    assert done.job_id is None and done.error is not None
    assert done.error.kind is CustomizationErrorKind.TRAINING_FAILED
    assert "flywheel-train-test not found" in done.error.message


async def test_nmp_outage_delays_the_job_without_events(h: Harness) -> None:
    await _requested(h)
    h.training.down = True
    await h.passes(3)
    assert h.events.published == []
    h.training.down = False
    await h.passes(3)
    assert h.training.submits == 1 and h.done().ok


async def test_status_unreadable_past_the_stall_timeout_is_a_stall(h: Harness) -> None:
    h.training.script = [RUNNING_HALF]
    await _requested(h)
    await h.passes(1)
    h.training.down = True
    await h.passes(60)
    assert h.events.of("customization.done") == []

    await h.passes(1)

    error = h.done().error
    assert error is not None and error.kind is CustomizationErrorKind.STALLED
    assert "status unreadable for 61s" in error.message and "connection refused" in error.message


async def test_proxy_unreachable_past_the_sync_timeout_is_a_sync_failure(h: Harness) -> None:
    h.training.script = [COMPLETED]
    h.training.sync_after_completion = False
    await _requested(h)
    await h.passes(1)
    h.training.down = True
    await h.passes(120)
    assert h.events.of("customization.done") == []

    await h.passes(1)

    error = h.done().error
    assert error is not None and error.kind is CustomizationErrorKind.MODEL_SYNC_FAILED


async def test_kafka_outage_delays_done_until_it_is_acknowledged(h: Harness) -> None:
    h.training.script = [RUNNING_HALF, {"status": "failed", "status_logs": []}]
    await _requested(h)
    await h.passes(1)
    h.events.down = True
    await h.passes(2)
    assert h.record().phase is Phase.FINISHED and not h.record().done_published
    h.events.down = False
    await h.passes(1)
    assert h.types() == ["customization.started", "customization.progress", "customization.done"]
    assert h.record().done_published
    assert (h.done().epochs_completed, h.done().steps_completed) == (1, 10), "last progress kept"


async def test_event_ids_are_derived_so_republishing_repeats_them(h: Harness) -> None:
    h.training.script = [RUNNING_HALF, COMPLETED]
    event = await _requested(h)
    first = Harness()
    await first.service().on_nim_up(event)
    await first.passes(3)
    await h.passes(3)
    assert [e.event_id for e in h.events.published] == [e.event_id for e in first.events.published]


async def test_only_the_lease_holder_acts_and_it_lets_go_on_stop(h: Harness) -> None:
    settings = SETTINGS.model_copy(update={"poll_interval_s": 0.01})
    h.lease.leading = False
    await _requested(h)
    reconciler = h.reconciler(settings)
    task = asyncio.create_task(reconciler.run_forever())
    await asyncio.sleep(0.05)
    assert h.training.submits == 0

    h.lease.leading = True
    reconciler.wake()
    await eventually(lambda: bool(h.events.of("customization.done")), timeout_s=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.lease.releases == 1


async def test_in_flight_lists_open_customizations(h: Harness) -> None:
    h.training.script = [RUNNING_HALF]
    event = await _requested(h)
    await h.passes(1)
    work = await h.service().in_flight()
    assert [(w.run_id, w.kind, w.resource_id) for w in work] == [
        (event.run_id, "customization_job", "cust-000001")
    ]


async def test_a_pass_whose_lease_changed_hands_before_its_post_does_not_post(
    h: Harness,
) -> None:
    await _requested(h)
    await h.lease.hold()  # the loop took the lease: tenure 1
    h.lease.leading = False  # it lapsed during the pass and was taken again: tenure 2
    h.lease.leading = True
    await h.reconciler().reconcile_once()
    assert h.training.submits == 0, "a stale tenure must not POST"
    await h.lease.hold()
    await h.reconciler().reconcile_once()
    assert h.training.submits == 1, "the next pass, in the current tenure, does"
