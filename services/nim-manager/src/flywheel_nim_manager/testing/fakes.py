"""In-memory fakes of nim-manager's ports and a `World` wiring them to the real service, for
unit and property tests (here and in other suites that need a conductor without servers)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.events import (
    CustomizationDone,
    CustomizationError,
    CustomizationErrorKind,
    DatasetFailed,
    DatasetFailureReason,
    DatasetReady,
    EvalDone,
    EvalError,
    EvalErrorKind,
    MetricScore,
    NimUp,
    RunCancelled,
    UsageStats,
)
from flywheel_contracts.examples import EXAMPLES
from flywheel_contracts.run_config import CandidateConfig, EvalType
from flywheel_contracts.runtime.testing import FakeLease as FakeLease
from flywheel_contracts.runtime.testing import ManualClock, RecordedEvents
from flywheel_nim_manager.reconciler import Policy, Reconciler
from flywheel_nim_manager.records import (
    CandidateRecord,
    Phase,
    RunRecord,
    WorkItem,
    WorkOutcome,
    candidate_key,
)
from flywheel_nim_manager.service import NimManagerService

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NAMESPACE = "dfwbp"
NIM_URL = "http://nim.test"


@dataclass
class _Run:
    ready: Envelope[Any] | None = None
    cancelled: Envelope[Any] | None = None
    dataset_failed: Envelope[Any] | None = None
    finished: bool = False


class MemoryRepository:
    """The Repository port with Mongo's semantics: conditional saves, handler-owned outcomes."""

    _SCHEDULER_FIELDS = (
        "phase",
        "granted_at",
        "granted_by",
        "created",
        "up_at",
        "ending",
        "ended_at",
    )

    def __init__(self) -> None:
        self.runs: dict[UUID, _Run] = {}
        self.records: dict[str, CandidateRecord] = {}
        self.fail_next_saves = 0

    async def add_ready(
        self, ready: Envelope[DatasetReady], candidates: Sequence[CandidateRecord]
    ) -> bool:
        assert ready.run_id is not None
        run = self.runs.get(ready.run_id)
        if run is not None and (run.ready is not None or run.finished):
            return False
        for record in candidates:
            self.records.setdefault(record.key, record)
        self.runs.setdefault(ready.run_id, _Run()).ready = ready
        return True

    async def add_cancelled(self, cancelled: Envelope[RunCancelled]) -> None:
        assert cancelled.run_id is not None
        self.runs.setdefault(cancelled.run_id, _Run()).cancelled = cancelled

    async def add_dataset_failed(self, failed: Envelope[DatasetFailed]) -> None:
        assert failed.run_id is not None
        self.runs.setdefault(failed.run_id, _Run()).dataset_failed = failed

    async def record_outcome(
        self, run_id: UUID, model: str, item: WorkItem, outcome: WorkOutcome
    ) -> bool:
        key = candidate_key(run_id, model)
        record = self.records.get(key)
        if record is None:
            return False
        self.records[key] = record.model_copy(
            update={"outcomes": {**record.outcomes, item: outcome}}
        )
        return True

    async def open_runs(self) -> list[RunRecord]:
        return [
            RunRecord(
                run_id=run_id,
                ready=run.ready,
                cancelled=run.cancelled,
                dataset_failed=run.dataset_failed,
            )
            for run_id, run in self.runs.items()
            if not run.finished
        ]

    async def candidates(self, run_ids: Iterable[UUID]) -> list[CandidateRecord]:
        wanted = set(run_ids)
        return [r for r in self.records.values() if r.run_id in wanted]

    async def save(self, record: CandidateRecord, expected: Phase) -> bool:
        if self.fail_next_saves:
            self.fail_next_saves -= 1
            raise ConnectionError("mongo went away")
        stored = self.records.get(record.key)
        if stored is None or stored.phase is not expected:
            return False
        changes = {name: getattr(record, name) for name in self._SCHEDULER_FIELDS}
        self.records[record.key] = stored.model_copy(update=changes)
        return True

    async def finish_run(self, run_id: UUID) -> None:
        self.runs[run_id].finished = True


@dataclass
class FakeDeployment:
    model: str
    gpus: int
    status: str = "pending"
    polls: int = 0


class FakeDeployer:
    """Deployment Management: deployments start after `start_polls` status reads (per model in
    `slow`), fail when their model is in `failing`, and disappear on delete. Tracks the GPUs held
    in the cluster."""

    def __init__(self) -> None:
        self.deployments: dict[str, FakeDeployment] = {}
        self.start_polls = 1
        self.slow: dict[str, int] = {}
        self.failing: set[str] = set()
        self.unreachable = False
        self.creates: list[str] = []
        self.deletes: list[str] = []
        self.peak_gpus = 0

    def gpus_in_use(self) -> int:
        return sum(d.gpus for d in self.deployments.values())

    def _check(self) -> None:
        if self.unreachable:
            raise ConnectionError("NMP unreachable")

    async def create(self, name: str, candidate: CandidateConfig) -> None:
        self._check()
        self.creates.append(name)
        self.deployments.setdefault(name, FakeDeployment(candidate.model_name, candidate.gpus))
        self.peak_gpus = max(self.peak_gpus, self.gpus_in_use())

    async def status(self, name: str) -> str | None:
        self._check()
        deployment = self.deployments.get(name)
        if deployment is None:
            return None
        deployment.polls += 1
        start_polls = self.slow.get(deployment.model, self.start_polls)
        if deployment.status == "pending" and deployment.polls > start_polls:
            deployment.status = "failed" if deployment.model in self.failing else "ready"
        return deployment.status

    async def delete(self, name: str) -> None:
        self._check()
        self.deletes.append(name)
        self.deployments.pop(name, None)

    async def served_models(self) -> frozenset[str]:
        self._check()
        return frozenset(d.model for d in self.deployments.values() if d.status == "ready")


def recorded_events() -> RecordedEvents:
    """The kit's event ports as nim-manager's, recording what it publishes."""
    return RecordedEvents("nim-manager")


def candidate(name: str, gpus: int = 1, **extra: Any) -> CandidateConfig:
    if extra.get("customization_enabled"):
        extra.setdefault("customization_target", f"{name}@2.0")
    return CandidateConfig(model_name=name, gpus=gpus, **extra)


def ready_event(
    run_id: UUID,
    candidates: Sequence[CandidateConfig],
    eval_types: Sequence[EvalType] = (EvalType.BASE, EvalType.ICL),
    min_score: float = 0.8,
    judge_model: str | None = None,
) -> Envelope[DatasetReady]:
    """dataset.ready for `run_id`: the golden example with these candidates."""
    example: DatasetReady = EXAMPLES["dataset.ready"].payload
    context = example.context
    config = context.config.model_copy(
        update={
            "candidates": tuple(candidates),
            "evaluation": context.config.evaluation.model_copy(
                update={
                    "eval_types": tuple(eval_types),
                    "min_score_to_recommend": min_score,
                    "judge_model": judge_model,
                }
            ),
        }
    )
    payload = example.model_copy(update={"context": context.model_copy(update={"config": config})})
    return new_event(payload, producer="datasets", run_id=run_id)


def evaluation(
    model: str,
    eval_type: EvalType,
    *,
    score: float = 0.9,
    tokens: float = 100.0,
    error: str | None = None,
    half_width: float = 0.1,
    failed: int = 0,
) -> EvalDone:
    """What the evaluator reports: `score` (interval `half_width` either side) on the
    tool-calling primary metric, or `error`."""
    if error is not None:
        return EvalDone(
            candidate_model=model,
            eval_type=eval_type,
            job_id=None,
            target_model=model,
            error=EvalError(kind=EvalErrorKind.JOB_FAILED, message=error),
        )
    return EvalDone(
        candidate_model=model,
        eval_type=eval_type,
        job_id=f"eval-{uuid4().hex[:8]}",
        target_model=model,
        scores=(
            MetricScore(
                name="function_name_and_args_accuracy",
                value=score,
                n=20,
                failed=failed,
                ci_low=max(score - half_width, 0.0),
                ci_high=min(score + half_width, 1.0),
            ),
        ),
        usage=UsageStats(
            requests=20,
            latency_p50_ms=100.0,
            latency_p95_ms=200.0,
            prompt_tokens_per_request=tokens * 0.75,
            completion_tokens_per_request=tokens * 0.25,
        ),
    )


def customization(up: NimUp, *, error: str | None = None) -> CustomizationDone:
    """What the customizer reports for a deployed candidate: an adapter, or `error`."""
    model = up.candidate.model_name
    adapter = f"{up.deployment.namespace}/customized-{model.replace('/', '-')}@cust-1"
    return CustomizationDone(
        candidate_model=model,
        job_id="cust-1",
        customized_model=None if error else adapter,
        error=CustomizationError(kind=CustomizationErrorKind.TRAINING_FAILED, message=error)
        if error
        else None,
        deployment=up.deployment,
        context=up.context,
    )


def eval_done(
    run_id: UUID,
    model: str,
    eval_type: EvalType,
    *,
    score: float = 0.9,
    tokens: float = 100.0,
    error: str | None = None,
    **options: Any,
) -> Envelope[EvalDone]:
    payload = evaluation(model, eval_type, score=score, tokens=tokens, error=error, **options)
    return new_event(payload, producer="evaluator", run_id=run_id)


def customization_done(
    run_id: UUID, up: NimUp, *, error: str | None = None
) -> Envelope[CustomizationDone]:
    return new_event(customization(up, error=error), producer="customizer", run_id=run_id)


def cancel_event(run_id: UUID) -> Envelope[RunCancelled]:
    return new_event(RunCancelled(reason="stop it"), producer="cli", run_id=run_id)


def dataset_failed_event(run_id: UUID) -> Envelope[DatasetFailed]:
    return new_event(
        DatasetFailed(reason=DatasetFailureReason.NOT_ENOUGH_RECORDS, message="too few records"),
        producer="datasets",
        run_id=run_id,
    )


@dataclass
class World:
    """The service over in-memory ports; `restart()` replaces the process, keeping the state."""

    budget: int = 4
    deploy_timeout_s: float = 600.0
    work_timeout_s: float = 3600.0
    clock: ManualClock = field(default_factory=ManualClock)
    repository: MemoryRepository = field(default_factory=MemoryRepository)
    deployer: FakeDeployer = field(default_factory=FakeDeployer)
    events: RecordedEvents = field(default_factory=recorded_events)
    lease: FakeLease = field(default_factory=FakeLease)
    judge: CandidateConfig | None = None
    """The judge nim-manager deploys for each run, if any."""

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.reconciler = Reconciler(
            self.repository,
            self.deployer,
            self.events.emit,
            self.lease,
            Policy(
                budget=self.budget,
                deploy_timeout=timedelta(seconds=self.deploy_timeout_s),
                work_timeout=timedelta(seconds=self.work_timeout_s),
                namespace=NAMESPACE,
                nim_url=NIM_URL,
            ),
            self.clock,
        )
        self.service = NimManagerService(
            self.repository,
            self.reconciler,
            self.lease,
            self.clock,
            budget=self.budget,
            tick_interval_s=0.01,
            judge=self.judge,
        )

    async def tick(self, times: int = 1, seconds: float = 1.0) -> None:
        """Passes of the reconciler, each begun as the service's loop begins it: by holding
        the lease (a pass that starts without it grants nothing)."""
        for _ in range(times):
            self.clock.advance(seconds)
            await self.lease.hold()
            await self.reconciler.tick()

    async def ready(
        self, candidates: Sequence[CandidateConfig], **options: Any
    ) -> tuple[UUID, Envelope[DatasetReady]]:
        run_id = uuid4()
        event = ready_event(run_id, candidates, **options)
        await self.service.on_dataset_ready(event)
        return run_id, event

    def ups(self, run_id: UUID | None = None) -> list[NimUp]:
        return [e.payload for e in self.events.of("nim.up", run_id)]

    async def evaluate(self, run_id: UUID, model: str, **options: Any) -> None:
        """Play the evaluator: base and ICL results for `model`."""
        for eval_type in (EvalType.BASE, EvalType.ICL):
            await self.service.on_eval_done(eval_done(run_id, model, eval_type, **options))

    def live_deployments(self, run_id: UUID) -> list[str]:
        return [name for name in self.deployer.deployments if run_id.hex in name]
