"""A run's events reduced to what its report shows: metadata, the outcome and a timeline.

Pure and order-independent: the events may come from a dozen topics in any order, redelivered
ones (same event id) count once.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from flywheel_contracts import events as ev
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.run_config import EvalType, RunConfig, WorkloadType


class State(StrEnum):
    """How a stretch of a timeline lane ended."""

    DONE = "done"
    FAILED = "failed"
    UNFINISHED = "unfinished"
    """Still going when the run's last event was written."""


class LaneKind(StrEnum):
    DATASETS = "datasets"
    DEPLOYMENT = "deployment"
    TRAINING = "training"
    EVALUATION = "evaluation"


@dataclass(frozen=True)
class Segment:
    label: str
    start: datetime
    end: datetime
    state: State
    preparing: bool = False
    """Setting the stage up rather than doing its work (a deployment starting): drawn lighter."""


@dataclass(frozen=True)
class Lane:
    """One row of the timeline: the datasets, or one stage of one candidate."""

    label: str
    kind: LaneKind
    segments: tuple[Segment, ...]
    eval_type: EvalType | None = None


@dataclass(frozen=True)
class RunStory:
    run_id: UUID
    requested: ev.RunRequested | None
    requested_at: datetime | None
    config: RunConfig | None
    """The resolved configuration, once the datasets service has published it."""
    workload_type: WorkloadType | None
    dataset: ev.DatasetReady | ev.DatasetFailed | None
    completed: ev.RunCompleted | None
    failed: ev.RunFailed | None
    started_at: datetime
    ended_at: datetime
    lanes: tuple[Lane, ...]


@dataclass
class _Candidate:
    """The timestamps of one candidate's stages, as far as the events tell."""

    up: datetime | None = None
    down: ev.NimDown | None = None
    down_at: datetime | None = None
    failed_at: datetime | None = None
    failure: ev.NimFailed | None = None
    training_started: datetime | None = None
    training_done: datetime | None = None
    training_ok: bool = True
    evals_started: dict[EvalType, datetime] = field(default_factory=dict)
    evals_done: dict[EvalType, tuple[datetime, bool]] = field(default_factory=dict)


def tell(run_id: UUID, events: Iterable[Envelope[Any]]) -> RunStory:
    """The story of run `run_id` from its events; other runs' events are ignored.

    Raises ValueError when none of the events belongs to the run.
    """
    seen: dict[UUID, Envelope[Any]] = {}
    for envelope in events:
        if envelope.run_id == run_id:
            seen.setdefault(envelope.event_id, envelope)
    # By time, ties by id: the same events give the same story whatever order they came in.
    ordered = sorted(seen.values(), key=lambda e: (e.occurred_at, e.event_id))
    if not ordered:
        raise ValueError(f"no event of run {run_id}")
    return _Reader(run_id).read(ordered)


class _Reader:
    def __init__(self, run_id: UUID) -> None:
        self.run_id = run_id
        self.requested: ev.RunRequested | None = None
        self.requested_at: datetime | None = None
        self.config: RunConfig | None = None
        self.workload_type: WorkloadType | None = None
        self.dataset: ev.DatasetReady | ev.DatasetFailed | None = None
        self.dataset_at: datetime | None = None
        self.completed: ev.RunCompleted | None = None
        self.failed: ev.RunFailed | None = None
        self.candidates: dict[str, _Candidate] = {}

    def read(self, ordered: list[Envelope[Any]]) -> RunStory:
        for envelope in ordered:
            self._apply(envelope.payload, envelope.occurred_at)
        started, ended = ordered[0].occurred_at, ordered[-1].occurred_at
        return RunStory(
            run_id=self.run_id,
            requested=self.requested,
            requested_at=self.requested_at,
            config=self.config,
            workload_type=self.workload_type,
            dataset=self.dataset,
            completed=self.completed,
            failed=self.failed,
            started_at=started,
            ended_at=ended,
            lanes=self._lanes(started, ended),
        )

    def _candidate(self, model: str) -> _Candidate:
        return self.candidates.setdefault(model, _Candidate())

    def _context(self, context: ev.DatasetContext) -> None:
        if self.config is None:
            self.config = context.config
            self.workload_type = context.workload_type
            # The configured order, whichever candidate's events came first.
            known = self.candidates
            self.candidates = {
                c.model_name: known.get(c.model_name, _Candidate())
                for c in context.config.candidates
            }
            self.candidates.update(known)

    def _apply(self, payload: EventPayload, at: datetime) -> None:
        match payload:
            case ev.RunRequested():
                self.requested, self.requested_at = payload, at
            case ev.DatasetReady(context=context):
                self._context(context)
                self.dataset, self.dataset_at = payload, at
            case ev.DatasetFailed():
                self.dataset, self.dataset_at = payload, at
            case ev.NimUp(candidate=candidate, context=context):
                self._context(context)
                self._candidate(candidate.model_name).up = at
            case ev.NimFailed(candidate_model=model):
                self._candidate(model).failed_at = at
                self._candidate(model).failure = payload
            case ev.NimDown(candidate_model=model):
                self._candidate(model).down, self._candidate(model).down_at = payload, at
            case ev.CustomizationStarted(candidate_model=model):
                self._candidate(model).training_started = at
            case ev.CustomizationDone(candidate_model=model, context=context):
                self._context(context)
                trained = self._candidate(model)
                trained.training_done, trained.training_ok = at, payload.ok
            case ev.EvalStarted(candidate_model=model, eval_type=eval_type):
                self._candidate(model).evals_started[eval_type] = at
            case ev.EvalDone(candidate_model=model, eval_type=eval_type):
                self._candidate(model).evals_done[eval_type] = (at, payload.ok)
            case ev.RunCompleted():
                self.completed = self.completed or payload
            case ev.RunFailed():
                self.failed = self.failed or payload

    def _lanes(self, started: datetime, ended: datetime) -> tuple[Lane, ...]:
        lanes = [self._dataset_lane(started, ended)]
        for model, candidate in self.candidates.items():
            lanes.extend(self._candidate_lanes(model, candidate, ended))
        return tuple(lane for lane in lanes if lane.segments)

    def _dataset_lane(self, started: datetime, ended: datetime) -> Lane:
        begin = self.requested_at or started
        if isinstance(self.dataset, ev.DatasetReady) and self.dataset_at is not None:
            segment = Segment("datasets built", begin, self.dataset_at, State.DONE)
        elif isinstance(self.dataset, ev.DatasetFailed) and self.dataset_at is not None:
            segment = Segment(
                f"failed: {self.dataset.reason}", begin, self.dataset_at, State.FAILED
            )
        else:
            segment = Segment("building datasets", begin, ended, State.UNFINISHED)
        return Lane("datasets", LaneKind.DATASETS, (segment,))

    def _candidate_lanes(self, model: str, c: _Candidate, ended: datetime) -> list[Lane]:
        lanes = [Lane(f"{model} deployment", LaneKind.DEPLOYMENT, self._deployment(c, ended))]
        training_start = c.training_started or c.training_done
        if training_start is not None:
            lanes.append(
                Lane(
                    f"{model} training",
                    LaneKind.TRAINING,
                    (
                        _span(
                            "LoRA training", training_start, c.training_done, c.training_ok, ended
                        ),
                    ),
                )
            )
        for eval_type in EvalType:
            begin = c.evals_started.get(eval_type)
            end, ok = c.evals_done.get(eval_type, (None, True))
            start = begin or end
            if start is None:
                continue
            segment = _span(f"{eval_type} evaluation", start, end, ok, ended)
            label = f"{model} eval {eval_type}"
            lanes.append(Lane(label, LaneKind.EVALUATION, (segment,), eval_type))
        return lanes

    def _deployment(self, c: _Candidate, ended: datetime) -> tuple[Segment, ...]:
        # nim.down tells how long the deployment existed, from its request on; without it the
        # deployment was requested when the datasets were ready.
        requested = self.dataset_at
        if c.down is not None and c.down_at is not None:
            requested = c.down_at - timedelta(seconds=c.down.deployment_seconds)
        if c.failure is not None and c.failed_at is not None:
            begin = min(requested or c.failed_at, c.failed_at)
            return (Segment(f"failed: {c.failure.reason}", begin, c.failed_at, State.FAILED),)
        if c.up is None:
            if c.down is None or c.down_at is None:
                return ()
            begin = min(requested or c.down_at, c.down_at)
            return (Segment(f"removed: {c.down.reason}", begin, c.down_at, State.FAILED),)
        begin = min(requested or c.up, c.up)
        deploying = Segment("deploying", begin, c.up, State.DONE, preparing=True)
        if c.down_at is None:
            return deploying, Segment("serving", c.up, ended, State.UNFINISHED)
        return deploying, Segment("serving", c.up, c.down_at, State.DONE)


def _span(label: str, start: datetime, end: datetime | None, ok: bool, ended: datetime) -> Segment:
    if end is None:
        return Segment(label, start, ended, State.UNFINISHED)
    return Segment(label, start, end, State.DONE if ok else State.FAILED)
