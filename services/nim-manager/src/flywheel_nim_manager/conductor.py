"""The conductor's decisions, as pure functions of the records, what NMP said and the time.

The reconciler (reconciler.py) applies them: it reads the records, asks NMP, calls these, then
publishes and stores what they return.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from flywheel_contracts.events import (
    DatasetReady,
    DeploymentRef,
    DeploymentRole,
    NimDown,
    NimDownReason,
    NimFailed,
    NimFailureReason,
    NimUp,
    RunCompleted,
    RunFailed,
    RunFailureReason,
)
from flywheel_contracts.ids import deterministic_name
from flywheel_contracts.run_config import CandidateConfig, EvalType
from flywheel_nim_manager.leaderboard import DEFAULT_JUDGEMENT, Judgement, build_leaderboard
from flywheel_nim_manager.records import (
    JUDGE_PREFIX,
    CandidateRecord,
    Ending,
    EndReason,
    Phase,
    RunRecord,
    WorkItem,
)

READY = "ready"
FAILED = "failed"


def deployment_name(run_id: UUID, model: str) -> str:
    """The NMP deployment of `model` for this run: per run, so two runs deploying the same model
    never share (or delete) each other's deployment, and stable, so a retry adopts it."""
    return deterministic_name(f"fw-{run_id.hex}", model)


def plan(
    run_id: UUID, ready: DatasetReady, queued_at: datetime, judge: CandidateConfig | None = None
) -> list[CandidateRecord]:
    """The run's candidates, queued in the order the configuration lists them; with `judge`,
    the run's own judge first (the run's `evaluation.judge_model`, if set, names its model)."""
    config = ready.context.config
    records = [
        CandidateRecord(
            run_id=run_id,
            model=candidate.model_name,
            index=index,
            candidate=candidate,
            eval_types=config.evaluation.eval_types,
            deployment_name=deployment_name(run_id, candidate.model_name),
            queued_at=queued_at,
        )
        for index, candidate in enumerate(config.candidates)
    ]
    if judge is None:
        return records
    model = config.evaluation.judge_model or judge.model_name
    judge = judge.model_copy(update={"model_name": model})
    judge_record = CandidateRecord(
        run_id=run_id,
        model=model,
        role=DeploymentRole.JUDGE,
        index=-1,
        candidate=judge,
        eval_types=(),
        deployment_name=deployment_name(run_id, f"{JUDGE_PREFIX}{model}"),
        queued_at=queued_at,
    )
    return [judge_record, *records]


def judge_of(records: Sequence[CandidateRecord]) -> CandidateRecord | None:
    return next((r for r in records if not r.is_candidate), None)


def judge_retirement(records: Sequence[CandidateRecord]) -> Ending | None:
    """The judge is removed once every candidate of its run has ended."""
    if all(r.phase.terminal for r in records if r.is_candidate):
        return Ending(reason=EndReason.FINISHED, message="every candidate has ended")
    return None


def expected_work(record: CandidateRecord) -> frozenset[WorkItem]:
    """What a deployed candidate serves before it may be removed.

    Base and ICL evaluations as configured; with customization enabled, the customization and,
    unless it failed, the customized evaluation.
    """
    items = {WorkItem.evaluation(t) for t in record.eval_types if t is not EvalType.CUSTOMIZED}
    if record.candidate.customization_enabled:
        items.add(WorkItem.CUSTOMIZATION)
        customization = record.outcomes.get(WorkItem.CUSTOMIZATION)
        if EvalType.CUSTOMIZED in record.eval_types and (customization is None or customization.ok):
            items.add(WorkItem.CUSTOMIZED_EVAL)
    return frozenset(items)


def pending_work(record: CandidateRecord) -> frozenset[WorkItem]:
    return expected_work(record) - record.outcomes.keys()


def retirement(record: CandidateRecord, now: datetime, work_timeout: timedelta) -> Ending | None:
    """Whether a serving candidate should be removed now, and why."""
    pending = pending_work(record)
    if not pending:
        return Ending(reason=EndReason.FINISHED, message="all work finished")
    assert record.up_at is not None
    if now - record.up_at >= work_timeout:
        missing = ", ".join(sorted(pending))
        return Ending(
            reason=EndReason.WORK_TIMED_OUT,
            message=f"no result for {missing} within {work_timeout.total_seconds():g}s",
        )
    return None


def stop(run: RunRecord) -> Ending:
    """Why the candidates of a stopped run end."""
    if run.cancelled is not None:
        return Ending(reason=EndReason.CANCELLED, message=run.cancelled.payload.reason)
    assert run.dataset_failed is not None
    return Ending(reason=EndReason.CANCELLED, message=run.dataset_failed.payload.message)


@dataclass(frozen=True)
class Wait:
    """Nothing to do yet."""


@dataclass(frozen=True)
class ServeNow:
    """Ready and synced: announce it."""


@dataclass(frozen=True)
class Remove:
    """Give up on it: delete what exists and end it."""

    ending: Ending


@dataclass(frozen=True)
class Vanished:
    """The deployment no longer exists although it was created: it ends at once."""

    ending: Ending


DeployStep = Wait | ServeNow | Remove | Vanished


def judge_gate(records: Sequence[CandidateRecord]) -> Ending | Wait | None:
    """Whether the run's candidates may be granted GPUs (None): not before its judge serves
    (each of their evaluations asks it: Wait), never once it ended without serving (the
    Ending the candidates get)."""
    judge = judge_of(records)
    if judge is None or judge.served:
        return None
    if not judge.phase.terminal:
        return Wait()
    why = judge.ending.message if judge.ending else "it ended"
    return Ending(
        reason=EndReason.DEPLOY_FAILED,
        message=f"the run's judge {judge.model} could not be deployed: {why}",
    )


def deployment_step(
    record: CandidateRecord,
    status: str | None,
    synced: bool,
    now: datetime,
    deploy_timeout: timedelta,
) -> DeployStep:
    """The next step of a deploying candidate, from its NMP status (None: not found) and whether
    the NIM proxy lists its model."""
    if status is None:
        return Vanished(
            Ending(
                reason=EndReason.DEPLOY_FAILED,
                message=f"deployment {record.deployment_name} disappeared while starting",
            )
        )
    if status == FAILED:
        return Remove(
            Ending(
                reason=EndReason.DEPLOY_FAILED,
                message=f"deployment {record.deployment_name} failed to start",
            )
        )
    if status == READY and synced:
        return ServeNow()
    assert record.granted_at is not None
    if now - record.granted_at >= deploy_timeout:
        waiting_for = "model sync" if status == READY else f"readiness (status {status})"
        return Remove(
            Ending(
                reason=EndReason.DEPLOY_TIMED_OUT,
                message=f"gave up on {waiting_for} after {deploy_timeout.total_seconds():g}s",
            )
        )
    return Wait()


_FAILURE_REASONS = {
    EndReason.CANCELLED: NimFailureReason.CANCELLED,
    EndReason.DEPLOY_TIMED_OUT: NimFailureReason.TIMED_OUT,
    EndReason.INSUFFICIENT_GPUS: NimFailureReason.INSUFFICIENT_GPUS,
}
_DOWN_REASONS = {
    EndReason.FINISHED: NimDownReason.FINISHED,
    EndReason.CANCELLED: NimDownReason.CANCELLED,
}


def end_event(record: CandidateRecord) -> NimDown | NimFailed:
    """nim.down for a candidate that served, nim.failed for one that never did."""
    ending = record.ending
    assert ending is not None
    if record.served:
        return NimDown(
            candidate_model=record.model,
            deployment_name=record.deployment_name,
            reason=_DOWN_REASONS.get(ending.reason, NimDownReason.FAILED),
            deployment_seconds=record.deployment_seconds or 0.0,
        )
    return NimFailed(
        candidate_model=record.model,
        deployment_name=record.deployment_name,
        reason=_FAILURE_REASONS.get(ending.reason, NimFailureReason.DEPLOY_FAILED),
        message=ending.message,
    )


def end_phase(record: CandidateRecord) -> Phase:
    return Phase.DOWN if record.served else Phase.FAILED


def nim_up(
    record: CandidateRecord,
    ready: DatasetReady,
    namespace: str,
    nim_url: str,
    judge: CandidateRecord | None = None,
) -> NimUp:
    """The deployment is serving. A candidate of a run with its own `judge` is announced with
    the run's context naming that judge, so every evaluation of it (customized ones too, whose
    context comes from here) asks the model this run deployed."""
    context = ready.context
    if judge is not None and record.is_candidate:
        evaluation = context.config.evaluation.model_copy(update={"judge_model": judge.model})
        config = context.config.model_copy(update={"evaluation": evaluation})
        context = context.model_copy(update={"config": config})
    endpoint = record.candidate.endpoint
    return NimUp(
        role=record.role,
        candidate=record.candidate,
        deployment=DeploymentRef(
            namespace=namespace,
            name=record.deployment_name,
            base_url=endpoint.base_url if endpoint is not None else f"{nim_url}/v1",
            # The NIM proxy serves a deployment under its model name.
            model_id=record.candidate.served_model,
        ),
        context=context,
    )


def run_outcome(
    run: RunRecord, records: Sequence[CandidateRecord], judgement: Judgement = DEFAULT_JUDGEMENT
) -> RunCompleted | RunFailed | None:
    """The run's terminal event once every candidate (and its judge) has ended; None while any
    is live."""
    if any(not record.phase.terminal for record in records):
        return None
    records = [record for record in records if record.is_candidate]
    if run.cancelled is not None:
        return RunFailed(
            reason=RunFailureReason.CANCELLED, message=run.cancelled.payload.reason, stage=None
        )
    if run.dataset_failed is not None:
        return RunFailed(
            reason=RunFailureReason.DATASET_FAILED,
            message=run.dataset_failed.payload.message,
            stage="datasets",
        )
    if run.ready is None:
        return None
    if not any(record.served for record in records):
        reasons = "; ".join(
            f"{r.model}: {r.ending.message}" for r in records if r.ending is not None
        )
        return RunFailed(
            reason=RunFailureReason.NO_CANDIDATE_DEPLOYED,
            message=f"no candidate could be deployed ({reasons})" if reasons else "no candidate",
            stage="deployment",
        )
    context = run.ready.payload.context
    return RunCompleted(
        workload_id=context.config.workload_id,
        client_id=context.config.client_id,
        leaderboard=build_leaderboard(
            context.workload_type, context.config, records, run.ready.payload.baseline, judgement
        ),
    )
