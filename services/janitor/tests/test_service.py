"""The ledger built from events in any order, and what each trigger reclaims and reports
(the service and the reclaimer together, on in-memory fakes)."""

from __future__ import annotations

import pytest

from flywheel_contracts.events import (
    EvalDone,
    InFlightWork,
    ReclaimTrigger,
    ResourceKind,
    ResourceRef,
    ResourcesReclaimed,
    RunCancelled,
    RunFailed,
    RunFailureReason,
    ServiceStopping,
    SystemShutdown,
)
from flywheel_contracts.examples import EXAMPLES
from flywheel_contracts.ids import derive_event_id
from flywheel_contracts.run_config import ExternalEndpoint
from flywheel_janitor.ledger import NO_RUN, Outcome
from flywheel_janitor.reclaimer import Reclaimer
from flywheel_janitor.service import JanitorService
from flywheel_janitor.testing import (
    FakeResources,
    InMemoryLedger,
    RecordedEvents,
    RunEvents,
    customization_done,
    customization_started,
    eval_done,
    eval_started,
    nim_down,
    nim_up,
)

pytestmark = pytest.mark.unit

DEPLOYMENT = "deployment/dep-a"
TRAINING = "customization_job/cust-1"
EVALUATION = "evaluation_job/eval-1"


def _deployment(name: str = "dep-a") -> ResourceRef:
    return ResourceRef(kind=ResourceKind.DEPLOYMENT, id=f"dfwbp/{name}")


def _report(published: RecordedEvents, index: int = -1) -> ResourcesReclaimed:
    payload: ResourcesReclaimed = published.published[index].payload
    return payload


async def _hold_everything(service: JanitorService, run: RunEvents, nmp: FakeResources) -> None:
    """The run holds one deployment, one training job and one evaluation job."""
    await service.on_nim_up(run(nim_up("dep-a"), 1))
    await service.on_customization_started(run(customization_started("cust-1"), 2, "customizer"))
    await service.on_eval_started(run(eval_started("eval-1"), 3, "evaluator"))
    nmp.existing |= {DEPLOYMENT, TRAINING, EVALUATION}


async def test_down_before_up_leaves_nothing_live(
    service: JanitorService, ledger: InMemoryLedger, run: RunEvents
) -> None:
    await service.on_nim_down(run(nim_down("dep-a"), 5))
    await service.on_customization_done(run(customization_done("cust-1"), 6, "customizer"))
    await service.on_eval_done(run(eval_done("eval-1"), 7, "evaluator"))
    await service.on_nim_up(run(nim_up("dep-a"), 1))
    await service.on_customization_started(run(customization_started("cust-1"), 2, "customizer"))
    await service.on_eval_started(run(eval_started("eval-1"), 3, "evaluator"))

    assert await ledger.live_resources() == []
    assert len(await ledger.resources_of(run.run_id)) == 3


async def test_an_external_candidate_is_noted_but_never_held_nor_reclaimed(
    service: JanitorService,
    reclaimer: Reclaimer,
    ledger: InMemoryLedger,
    nmp: FakeResources,
    published: RecordedEvents,
    run: RunEvents,
) -> None:
    up = nim_up("fw-ext")
    external = up.candidate.model_copy(
        update={
            "customization_enabled": False,
            "endpoint": ExternalEndpoint(base_url="http://127.0.0.1:8080/v1"),
        }
    )
    await service.on_nim_up(run(up.model_copy(update={"candidate": external}), 1))
    await service.on_run_cancelled(run(RunCancelled(reason="enough"), 2, "cli"))
    await reclaimer.run_pending()

    assert await ledger.resources_of(run.run_id) == []
    assert nmp.calls == []
    assert _report(published).reclaimed == ()


async def test_up_then_progress_keeps_the_resource_live_until_done(
    service: JanitorService, ledger: InMemoryLedger, run: RunEvents
) -> None:
    await service.on_customization_started(run(customization_started("cust-1"), 1, "customizer"))
    progress = EXAMPLES["customization.progress"].payload.model_copy(update={"job_id": "cust-1"})
    await service.on_customization_progress(run(progress, 2, "customizer"))

    live = await ledger.live_resources(run.run_id)

    assert [r.target.key for r in live] == [TRAINING]
    await service.on_customization_done(run(customization_done("cust-1"), 3, "customizer"))
    assert await ledger.live_resources() == []


async def test_cancel_reclaims_every_live_resource_and_reports_it(
    service: JanitorService,
    reclaimer: Reclaimer,
    ledger: InMemoryLedger,
    nmp: FakeResources,
    published: RecordedEvents,
    run: RunEvents,
) -> None:
    await _hold_everything(service, run, nmp)
    cancel = run(RunCancelled(reason="not needed", requested_by="alice"), 4, "cli")

    await service.on_run_cancelled(cancel)
    await reclaimer.run_pending()

    report = _report(published)
    assert report.trigger is ReclaimTrigger.RUN_CANCELLED
    assert report.reason == "not needed (by alice)"
    assert set(report.reclaimed) == {
        _deployment(),
        ResourceRef(kind=ResourceKind.CUSTOMIZATION_JOB, id="cust-1"),
        ResourceRef(kind=ResourceKind.EVALUATION_JOB, id="eval-1"),
    }
    assert (report.already_gone, report.failed) == ((), ())
    envelope = published.published[-1]
    assert envelope.run_id == run.run_id
    assert envelope.event_id == derive_event_id(cancel.event_id, "resources.reclaimed")
    assert await ledger.live_resources() == []
    assert nmp.existing == set()


async def test_a_redelivered_cancel_reclaims_and_reports_once(
    service: JanitorService,
    reclaimer: Reclaimer,
    nmp: FakeResources,
    published: RecordedEvents,
    run: RunEvents,
) -> None:
    await _hold_everything(service, run, nmp)
    cancel = run(RunCancelled(), 4, "cli")

    await service.on_run_cancelled(cancel)
    await reclaimer.run_pending()
    await service.on_run_cancelled(cancel)
    await reclaimer.run_pending()

    assert len(published.published) == 1
    assert len(nmp.calls) == 3


async def test_a_cancel_with_nothing_held_still_reports(
    service: JanitorService, reclaimer: Reclaimer, published: RecordedEvents, run: RunEvents
) -> None:
    await service.on_run_cancelled(run(RunCancelled(), 4, "cli"))
    await reclaimer.run_pending()

    report = _report(published)
    assert (report.reclaimed, report.already_gone, report.failed) == ((), (), ())


async def test_a_resource_seen_after_the_cancel_is_reclaimed_at_once(
    service: JanitorService,
    reclaimer: Reclaimer,
    ledger: InMemoryLedger,
    nmp: FakeResources,
    published: RecordedEvents,
    run: RunEvents,
) -> None:
    await service.on_run_cancelled(run(RunCancelled(), 4, "cli"))
    await reclaimer.run_pending()
    nmp.existing.add(DEPLOYMENT)

    await service.on_nim_up(run(nim_up("dep-a"), 1))
    await reclaimer.run_pending()

    assert len(published.published) == 2
    late = _report(published)
    assert late.trigger is ReclaimTrigger.RUN_CANCELLED
    assert late.reclaimed == (_deployment(),)
    assert "appeared after the run ended" in late.reason
    assert await ledger.live_resources() == []


async def test_one_failing_resource_does_not_stop_the_others_and_stays_live(
    service: JanitorService,
    reclaimer: Reclaimer,
    ledger: InMemoryLedger,
    nmp: FakeResources,
    published: RecordedEvents,
    run: RunEvents,
) -> None:
    await _hold_everything(service, run, nmp)
    nmp.fail[TRAINING] = "POST /v1/customization/jobs/cust-1/cancel -> 503: busy"

    await service.on_run_failed(
        run(RunFailed(reason=RunFailureReason.TIMED_OUT, message="too slow"), 9)
    )
    await reclaimer.run_pending()

    report = _report(published)
    assert report.trigger is ReclaimTrigger.RUN_FINISHED
    assert report.reason == "run failed (timed_out): too slow"
    assert len(report.reclaimed) == 2
    assert [(f.resource.id, f.error) for f in report.failed] == [
        ("cust-1", "POST /v1/customization/jobs/cust-1/cancel -> 503: busy")
    ]
    assert [r.target.key for r in await ledger.live_resources()] == [TRAINING]


async def test_a_completed_run_reports_only_leftovers(
    service: JanitorService,
    reclaimer: Reclaimer,
    nmp: FakeResources,
    published: RecordedEvents,
    run: RunEvents,
) -> None:
    quiet, leaky = RunEvents(), RunEvents()
    completed = EXAMPLES["run.completed"].payload
    await service.on_run_completed(quiet(completed, 30))
    await service.on_nim_up(leaky(nim_up("dep-a"), 1))
    nmp.existing.add(DEPLOYMENT)
    await service.on_run_completed(leaky(completed, 30))

    await reclaimer.run_pending()

    assert [e.run_id for e in published.published] == [leaky.run_id]
    assert _report(published).trigger is ReclaimTrigger.RUN_FINISHED
    assert _report(published).reclaimed == (_deployment(),)


async def test_a_second_terminal_event_reports_only_what_it_finds(
    service: JanitorService, reclaimer: Reclaimer, published: RecordedEvents, run: RunEvents
) -> None:
    await service.on_run_cancelled(run(RunCancelled(), 4, "cli"))
    await service.on_run_failed(
        run(RunFailed(reason=RunFailureReason.CANCELLED, message="cancelled"), 5)
    )
    await reclaimer.run_pending()

    assert [_report(published, i).trigger for i in range(len(published.published))] == [
        ReclaimTrigger.RUN_CANCELLED
    ]


async def test_a_cancel_is_answered_even_after_the_run_completed(
    service: JanitorService, reclaimer: Reclaimer, published: RecordedEvents, run: RunEvents
) -> None:
    await service.on_run_completed(run(EXAMPLES["run.completed"].payload, 30))
    await service.on_run_cancelled(run(RunCancelled(), 31, "cli"))
    await reclaimer.run_pending()

    (envelope,) = published.published
    assert envelope.payload.trigger is ReclaimTrigger.RUN_CANCELLED
    assert envelope.payload.reclaimed == ()


async def test_shutdown_reclaims_every_run_and_runs_heard_of_later_that_predate_it(
    service: JanitorService,
    reclaimer: Reclaimer,
    ledger: InMemoryLedger,
    nmp: FakeResources,
    published: RecordedEvents,
) -> None:
    runs = [RunEvents() for _ in range(3)]
    for index, run in enumerate(runs[:2]):
        await service.on_nim_up(run(nim_up(f"dep-{index}"), 1))
    nmp.existing |= {"deployment/dep-0", "deployment/dep-1", "deployment/dep-2"}
    shutdown = RunEvents()(SystemShutdown(requested_by="ops"), 10, "cli")

    await service.on_system_shutdown(shutdown)
    # The third run's nim.up happened before the shutdown but is consumed after it.
    await service.on_nim_up(runs[2](nim_up("dep-2"), 2))
    newer = RunEvents()
    await service.on_nim_up(newer(nim_up("dep-new"), 20))
    await reclaimer.run_pending()

    reports = {e.run_id: e for e in published.published}
    assert set(reports) == {run.run_id for run in runs}
    for index, run in enumerate(runs):
        payload = reports[run.run_id].payload
        assert payload.trigger is ReclaimTrigger.SYSTEM_SHUTDOWN
        assert payload.reclaimed == (_deployment(f"dep-{index}"),)
        assert reports[run.run_id].event_id == derive_event_id(
            shutdown.event_id, "resources.reclaimed", str(run.run_id)
        )
    assert [r.run_id for r in await ledger.live_resources()] == [newer.run_id]


async def test_a_deployment_shared_with_a_running_run_is_left_to_it(
    service: JanitorService,
    reclaimer: Reclaimer,
    ledger: InMemoryLedger,
    nmp: FakeResources,
    published: RecordedEvents,
) -> None:
    first, second = RunEvents(), RunEvents()
    await service.on_nim_up(first(nim_up("dep-a"), 1))
    await service.on_nim_up(second(nim_up("dep-a"), 2))
    nmp.existing.add(DEPLOYMENT)

    await service.on_run_cancelled(first(RunCancelled(), 3, "cli"))
    await reclaimer.run_pending()

    assert nmp.calls == []
    assert _report(published).reclaimed == ()
    (record,) = await ledger.resources_of(first.run_id)
    assert record.outcome is Outcome.SHARED
    assert f"run {second.run_id}" in (record.error or "")

    await service.on_run_cancelled(second(RunCancelled(), 4, "cli"))
    await reclaimer.run_pending()
    assert _report(published).reclaimed == (_deployment(),)


async def test_a_report_not_published_is_published_later_with_the_same_id(
    service: JanitorService,
    reclaimer: Reclaimer,
    ledger: InMemoryLedger,
    nmp: FakeResources,
    published: RecordedEvents,
    run: RunEvents,
) -> None:
    await _hold_everything(service, run, nmp)
    cancel = run(RunCancelled(), 4, "cli")
    await service.on_run_cancelled(cancel)
    published.down = True

    assert await reclaimer.run_pending() == 0
    (pending,) = await ledger.pending_tasks(10)
    assert pending.report is not None

    published.down = False
    assert await reclaimer.run_pending() == 1
    assert len(nmp.calls) == 3  # the resources were reclaimed once; only the report was retried
    (envelope,) = published.published
    assert envelope.event_id == derive_event_id(cancel.event_id, "resources.reclaimed")
    assert len(envelope.payload.reclaimed) == 3
    assert await ledger.pending_tasks(10) == []


async def test_a_task_retried_after_a_crash_keeps_what_it_had_reclaimed(
    service: JanitorService,
    reclaimer: Reclaimer,
    ledger: InMemoryLedger,
    nmp: FakeResources,
    published: RecordedEvents,
    run: RunEvents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _hold_everything(service, run, nmp)
    await service.on_run_cancelled(run(RunCancelled(), 4, "cli"))

    async def crash(task_id: str, report: str) -> None:
        raise ConnectionError("mongo went away")

    with monkeypatch.context() as patch:
        patch.setattr(ledger, "save_report", crash)
        assert await reclaimer.run_pending() == 0
    assert await reclaimer.run_pending() == 1

    assert len(nmp.calls) == 3
    report = _report(published)
    assert (len(report.reclaimed), report.already_gone) == (3, ())


async def test_an_evaluation_that_never_started_is_only_history(
    service: JanitorService, ledger: InMemoryLedger, run: RunEvents
) -> None:
    done = eval_done("eval-1").model_copy(update={"job_id": None})
    assert isinstance(done, EvalDone)

    await service.on_eval_done(run(done, 3, "evaluator"))

    assert await ledger.resources_of(run.run_id) == []
    (entry,) = await ledger.history(run.run_id)
    assert "never started" in entry.summary


async def test_a_stopping_instance_is_recorded_and_its_work_watched_over(
    service: JanitorService, ledger: InMemoryLedger, run: RunEvents
) -> None:
    work = InFlightWork(run_id=run.run_id, kind="evaluation_job", resource_id="eval-1")
    stopping = run(ServiceStopping(service="evaluator", instance="ev-0/42", in_flight=(work,)))
    janitor_work = InFlightWork(run_id=NO_RUN, kind="reclaim_task")
    janitor = ServiceStopping(service="janitor", instance="j-0", in_flight=(janitor_work,))
    await service.on_service_stopping(run(janitor, -1))

    await service.on_service_stopping(stopping)
    await service.on_service_stopping(stopping)

    instance, _ = await ledger.stopped_instances(10)
    assert (instance.service, instance.instance) == ("evaluator", "ev-0/42")
    assert [(w.run_id, w.resource_id) for w in instance.in_flight] == [(run.run_id, "eval-1")]
    (entry,) = await ledger.history(run.run_id)
    assert entry.summary == "evaluator instance ev-0/42 stopped holding evaluation_job eval-1"
    assert [r.target.key for r in await ledger.live_resources(run.run_id)] == [EVALUATION]
    assert await ledger.get_run(NO_RUN) is None


async def test_work_in_flight_for_an_ended_run_is_reclaimed(
    service: JanitorService,
    reclaimer: Reclaimer,
    nmp: FakeResources,
    published: RecordedEvents,
    run: RunEvents,
) -> None:
    await service.on_run_cancelled(run(RunCancelled(), 1, "cli"))
    await reclaimer.run_pending()
    nmp.existing.add("deployment/fw-dep")
    in_flight = (
        InFlightWork(run_id=run.run_id, kind="scheduler_lease"),
        InFlightWork(run_id=run.run_id, kind="deployment", resource_id="fw-dep"),
    )
    stopping = ServiceStopping(service="nim-manager", instance="nm-0", in_flight=in_flight)

    await service.on_service_stopping(run(stopping, 2))
    await reclaimer.run_pending()

    assert _report(published).reclaimed == (ResourceRef(kind=ResourceKind.DEPLOYMENT, id="fw-dep"),)
    assert nmp.existing == set()
