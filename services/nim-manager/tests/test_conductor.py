"""The conductor's pure decisions: names, expected work, deployment steps, run outcomes."""

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from flywheel_contracts.events import (
    NimDown,
    NimDownReason,
    NimFailed,
    NimFailureReason,
    RunFailed,
    RunFailureReason,
)
from flywheel_contracts.run_config import EvalType
from flywheel_nim_manager import conductor
from flywheel_nim_manager.conductor import Remove, ServeNow, Vanished, Wait
from flywheel_nim_manager.records import (
    CandidateRecord,
    Ending,
    EndReason,
    Phase,
    RunRecord,
    WorkItem,
    WorkOutcome,
)
from flywheel_nim_manager.testing.fakes import T0, cancel_event, candidate, ready_event

pytestmark = pytest.mark.unit

TIMEOUT = timedelta(seconds=60)


def _record(run_id: UUID | None = None, *, customization_enabled: bool = False) -> CandidateRecord:
    run_id = run_id or uuid4()
    ready = ready_event(
        run_id,
        [candidate("meta/llama-3.2-1b-instruct", customization_enabled=customization_enabled)],
        eval_types=(EvalType.BASE, EvalType.ICL, EvalType.CUSTOMIZED),
    )
    return conductor.plan(run_id, ready.payload, T0)[0]


def _with(record: CandidateRecord, **outcomes: bool) -> CandidateRecord:
    return record.model_copy(
        update={"outcomes": {WorkItem(item): WorkOutcome(ok=ok) for item, ok in outcomes.items()}}
    )


def test_deployment_names_are_per_run_stable_and_nmp_safe() -> None:
    run_a, run_b = uuid4(), uuid4()
    model = "meta/llama-3.1-70b-instruct-with-a-rather-long-name-for-its-deployment"
    name = conductor.deployment_name(run_a, model)
    assert name == conductor.deployment_name(run_a, model)
    assert name != conductor.deployment_name(run_b, model)
    assert name.startswith(f"fw-{run_a.hex}")
    assert len(name) <= 63
    assert "/" not in name


def test_plan_queues_every_candidate_in_configured_order() -> None:
    run_id = uuid4()
    ready = ready_event(run_id, [candidate("org/a"), candidate("org/b", gpus=2)])
    records = conductor.plan(run_id, ready.payload, T0)
    assert [(r.model, r.index, r.candidate.gpus, r.phase) for r in records] == [
        ("org/a", 0, 1, Phase.QUEUED),
        ("org/b", 1, 2, Phase.QUEUED),
    ]


def test_without_customization_only_base_and_icl_are_expected() -> None:
    assert conductor.expected_work(_record()) == {WorkItem.BASE_EVAL, WorkItem.ICL_EVAL}


def test_customization_adds_the_training_and_its_evaluation() -> None:
    record = _record(customization_enabled=True)
    assert conductor.pending_work(record) == set(WorkItem)
    done = _with(record, eval_base=True, eval_icl=True, customization=True)
    assert conductor.pending_work(done) == {WorkItem.CUSTOMIZED_EVAL}


def test_a_failed_customization_expects_no_customized_evaluation() -> None:
    record = _with(
        _record(customization_enabled=True), eval_base=True, eval_icl=True, customization=False
    )
    assert conductor.pending_work(record) == set()


def test_retirement_when_done_or_overdue() -> None:
    record = _record().model_copy(update={"phase": Phase.UP, "up_at": T0})
    assert conductor.retirement(record, T0 + timedelta(seconds=1), TIMEOUT) is None
    overdue = conductor.retirement(record, T0 + TIMEOUT, TIMEOUT)
    assert overdue is not None
    assert overdue.reason is EndReason.WORK_TIMED_OUT
    assert "eval_base" in overdue.message
    finished = conductor.retirement(_with(record, eval_base=True, eval_icl=True), T0, TIMEOUT)
    assert finished == Ending(reason=EndReason.FINISHED, message="all work finished")


@pytest.mark.parametrize(
    ("status", "synced", "elapsed", "expected"),
    [
        ("pending", False, 1, Wait),
        ("ready", False, 1, Wait),
        ("ready", True, 1, ServeNow),
        ("failed", False, 1, Remove),
        (None, False, 1, Vanished),
        ("pending", False, 60, Remove),
        ("ready", False, 60, Remove),
        ("unreachable", False, 60, Remove),
    ],
)
def test_deployment_steps(
    status: str | None, synced: bool, elapsed: int, expected: type[object]
) -> None:
    record = _record().model_copy(update={"phase": Phase.DEPLOYING, "granted_at": T0})
    step = conductor.deployment_step(
        record, status, synced, T0 + timedelta(seconds=elapsed), TIMEOUT
    )
    assert isinstance(step, expected)


def test_a_timeout_says_what_it_waited_for() -> None:
    record = _record().model_copy(update={"phase": Phase.DEPLOYING, "granted_at": T0})
    step = conductor.deployment_step(record, "ready", False, T0 + TIMEOUT, TIMEOUT)
    assert isinstance(step, Remove)
    assert step.ending.reason is EndReason.DEPLOY_TIMED_OUT
    assert "model sync" in step.ending.message


def test_end_events_tell_served_from_never_served() -> None:
    ending = Ending(reason=EndReason.CANCELLED, message="stop")
    never = _record().model_copy(update={"ending": ending, "granted_at": T0})
    failed = conductor.end_event(never)
    assert isinstance(failed, NimFailed)
    assert failed.reason is NimFailureReason.CANCELLED
    served = never.model_copy(update={"up_at": T0, "ended_at": T0 + timedelta(seconds=90)})
    down = conductor.end_event(served)
    assert isinstance(down, NimDown)
    assert down.reason is NimDownReason.CANCELLED
    assert down.deployment_seconds == 90


def test_nim_up_carries_candidate_endpoint_and_context() -> None:
    run_id = uuid4()
    ready = ready_event(run_id, [candidate("org/a")])
    record = conductor.plan(run_id, ready.payload, T0)[0]
    up = conductor.nim_up(record, ready.payload, "ns", "http://nim.test")
    assert up.candidate == record.candidate
    assert up.deployment.base_url == "http://nim.test/v1"
    assert up.deployment.model_id == "org/a"
    assert up.deployment.name == record.deployment_name
    assert up.deployment.namespace == "ns"
    assert up.context == ready.payload.context


def test_no_outcome_while_a_candidate_is_live() -> None:
    run_id = uuid4()
    ready = ready_event(run_id, [candidate("org/a")])
    record = conductor.plan(run_id, ready.payload, T0)[0]
    run = RunRecord(run_id=run_id, ready=ready)
    assert conductor.run_outcome(run, [record]) is None


def test_a_run_where_nothing_deployed_fails() -> None:
    run_id = uuid4()
    ready = ready_event(run_id, [candidate("org/a")])
    ending = Ending(reason=EndReason.DEPLOY_FAILED, message="boom")
    record = conductor.plan(run_id, ready.payload, T0)[0].model_copy(
        update={"phase": Phase.FAILED, "ending": ending}
    )
    outcome = conductor.run_outcome(RunRecord(run_id=run_id, ready=ready), [record])
    assert isinstance(outcome, RunFailed)
    assert outcome.reason is RunFailureReason.NO_CANDIDATE_DEPLOYED
    assert "org/a: boom" in outcome.message


def test_a_cancelled_run_without_candidates_fails_as_cancelled() -> None:
    run_id = uuid4()
    run = RunRecord(run_id=run_id, cancelled=cancel_event(run_id))
    outcome = conductor.run_outcome(run, [])
    assert isinstance(outcome, RunFailed)
    assert outcome.reason is RunFailureReason.CANCELLED


def test_a_run_waits_for_its_datasets() -> None:
    assert conductor.run_outcome(RunRecord(run_id=uuid4()), []) is None
