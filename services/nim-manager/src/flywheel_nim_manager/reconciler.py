"""One pass of the active scheduler over every open run: stop, retire, remove, schedule, deploy,
conclude. Each step publishes before it stores, so a pass cut short by a crash is redone by the
next one with the same event ids.
"""

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import structlog

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.errors import PermanentError
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime.emitting import Emit
from flywheel_nim_manager import conductor, metrics
from flywheel_nim_manager.conductor import Remove, ServeNow, Vanished, Wait
from flywheel_nim_manager.leaderboard import Judgement
from flywheel_nim_manager.ports import Clock, Deployer, Lease, Repository
from flywheel_nim_manager.records import CandidateRecord, Ending, EndReason, Phase, RunRecord
from flywheel_nim_manager.scheduling import Request, plan

_log = structlog.get_logger("flywheel.nim_manager.reconciler")

UNREACHABLE = "unreachable"
"""The status used when NMP could not be asked: keep waiting, up to the deploy timeout."""


@dataclass(frozen=True)
class Policy:
    budget: int
    deploy_timeout: timedelta
    work_timeout: timedelta
    namespace: str
    nim_url: str
    judgement: Judgement = field(default_factory=Judgement)


class Reconciler:
    """Runs the passes; one instance per process, driven by the service's loop while this
    instance holds the scheduler lease."""

    def __init__(
        self,
        repository: Repository,
        deployer: Deployer,
        emit: Emit,
        lease: Lease,
        policy: Policy,
        clock: Clock,
    ) -> None:
        self._repo = repository
        self._deployer = deployer
        self._emit = emit
        self._lease = lease
        self._policy = policy
        self._clock = clock
        # The pass's view, refreshed from Mongo at its start and kept current by its steps.
        self._runs: dict[UUID, RunRecord] = {}
        self._records: dict[str, CandidateRecord] = {}
        self._now = clock()

    async def tick(self) -> None:
        """One pass; called while this instance holds the lease."""
        tenure = self._lease.tenure
        await self._load()
        await self._stop_runs()
        await self._drop_unjudged()
        await self._retire()
        await self._remove()
        # NMP calls above may have taken longer than the lease: grant only in the tenure this
        # pass began in (a lapse, even one this instance won back, may have let another
        # scheduler grant meanwhile), and from a fresh view.
        if tenure is not None and await self._lease.hold() == tenure:
            await self._load()
            await self._schedule()
        await self._connect()
        await self._deploy()
        await self._conclude()
        metrics.GPUS_IN_USE.set(self.gpus_in_use())
        metrics.QUEUED.set(len(self._queued()))

    async def _load(self) -> None:
        self._now = self._clock()
        self._runs = {run.run_id: run for run in await self._repo.open_runs()}
        self._records = {r.key: r for r in await self._repo.candidates(self._runs)}

    def gpus_in_use(self) -> int:
        """GPUs held by deployments and their training jobs, as of the last pass."""
        return sum(r.gpus for r in self._records.values() if r.phase.holds_gpus)

    def _in(self, phase: Phase) -> list[CandidateRecord]:
        return [r for r in self._records.values() if r.phase is phase]

    def _of_run(self, run_id: UUID) -> list[CandidateRecord]:
        return [r for r in self._records.values() if r.run_id == run_id]

    def _by_run(self) -> dict[UUID, list[CandidateRecord]]:
        by_run: dict[UUID, list[CandidateRecord]] = defaultdict(list)
        for record in self._records.values():
            by_run[record.run_id].append(record)
        return by_run

    def _judge_gates(self) -> dict[UUID, Ending | conductor.Wait | None]:
        """Each run's judge gate (conductor.judge_gate), from the pass's current view."""
        return {run_id: conductor.judge_gate(records) for run_id, records in self._by_run().items()}

    def _queued(self) -> list[CandidateRecord]:
        """Queued candidates of runs still going, oldest first; a run's candidates only once
        its judge (if nim-manager deploys one) serves."""
        gates = self._judge_gates()
        schedulable = [
            r
            for r in self._in(Phase.QUEUED)
            if self._runs[r.run_id].ready is not None
            and self._runs[r.run_id].stopping is None
            and (not r.is_candidate or gates[r.run_id] is None)
        ]
        return sorted(schedulable, key=lambda r: (r.queued_at, str(r.run_id), r.index))

    async def _move(self, record: CandidateRecord, **changes: Any) -> CandidateRecord | None:
        """Store `changes` unless another scheduler moved the record meanwhile."""
        updated = record.model_copy(update=changes)
        if not await self._repo.save(updated, expected=record.phase):
            _log.warning(
                "candidate.changed_elsewhere", run_id=str(record.run_id), model=record.model
            )
            del self._records[record.key]
            return None
        self._records[record.key] = updated
        return updated

    async def _emit_for(self, record: CandidateRecord, payload: EventPayload) -> None:
        """Emit a candidate's event, caused by its run's `dataset.ready`."""
        ready = self._runs[record.run_id].ready
        assert ready is not None, "a run has candidates only once its datasets are ready"
        await self._emit(payload, cause=ready, discriminator=record.discriminator)

    # The steps of a pass, in order.

    async def _stop_runs(self) -> None:
        """Cancelled (or dataset-failed) runs: drop what is queued, remove what is deployed."""
        for record in list(self._records.values()):
            run = self._runs[record.run_id]
            if run.stopping is None:
                continue
            if record.phase is Phase.QUEUED:
                await self._move(
                    record, phase=Phase.DROPPED, ending=conductor.stop(run), ended_at=self._now
                )
            elif record.phase in (Phase.DEPLOYING, Phase.UP):
                await self._move(record, phase=Phase.REMOVING, ending=conductor.stop(run))

    async def _drop_unjudged(self) -> None:
        """Queued candidates of a run whose judge could not be deployed never start."""
        gates = self._judge_gates()
        for record in self._in(Phase.QUEUED):
            gate = gates[record.run_id]
            if record.is_candidate and isinstance(gate, Ending):
                await self._move(record, phase=Phase.DROPPED, ending=gate, ended_at=self._now)

    async def _retire(self) -> None:
        """Serving candidates whose work is done (or overdue) are removed, and a run's judge
        once all its candidates have ended."""
        for record in self._in(Phase.UP):
            ending = (
                conductor.retirement(record, self._now, self._policy.work_timeout)
                if record.is_candidate
                else conductor.judge_retirement(self._of_run(record.run_id))
            )
            if ending is not None:
                _log.info(
                    "candidate.retiring",
                    run_id=str(record.run_id),
                    model=record.model,
                    reason=ending.reason.value,
                )
                await self._move(record, phase=Phase.REMOVING, ending=ending)

    async def _remove(self) -> None:
        """Delete, wait until gone, then free the GPUs and announce the end."""
        for record in self._in(Phase.REMOVING):
            if record.external:
                await self._end(record)
                continue
            with _logged_failure(record, "removal"):
                name = record.deployment_name
                if await self._deployer.status(name) is not None:
                    await self._deployer.delete(name)
                    if await self._deployer.status(name) is not None:
                        continue  # still going away; look again next pass
                await self._end(record)

    async def _end(self, record: CandidateRecord) -> None:
        """Announce the end of a candidate that holds nothing in NMP any more."""
        ended = record.model_copy(update={"ended_at": self._now})
        phase = conductor.end_phase(ended)
        await self._emit_for(ended, conductor.end_event(ended))
        await self._move(record, phase=phase, ending=ended.ending, ended_at=self._now)
        _log.info(
            "candidate.ended",
            run_id=str(record.run_id),
            model=record.model,
            phase=phase.value,
            reason=ended.ending.reason.value if ended.ending else None,
        )

    async def _schedule(self) -> None:
        """Grant GPUs to queued candidates (FCFS with backfill) within the budget."""
        queue = {r.key: r for r in self._queued() if not r.external}
        if not queue:
            return
        holding = [r.gpus for r in self._records.values() if r.phase.holds_gpus]
        budget = self._policy.budget
        decided = plan(budget, holding, [Request(key, r.gpus) for key, r in queue.items()])
        for key in decided.impossible:
            record = queue[key]
            ending = Ending(
                reason=EndReason.INSUFFICIENT_GPUS,
                message=f"needs {record.gpus} GPU(s){' with training' if record.training else ''}"
                f", the budget is {budget}",
            )
            await self._end(record.model_copy(update={"ending": ending}))
        for key in decided.start:
            record = queue[key]
            # Stored before NMP is asked, so a crash never leaves a deployment unaccounted for.
            granted = await self._move(
                record,
                phase=Phase.DEPLOYING,
                granted_at=self._now,
                granted_by=self._lease.holder_id,
            )
            if granted is not None:
                _log.info(
                    "candidate.granted",
                    run_id=str(record.run_id),
                    model=record.model,
                    gpus=record.gpus,
                    in_use=self.gpus_in_use(),
                    budget=budget,
                )

    async def _connect(self) -> None:
        """External candidates serve at once: nothing to grant, create or wait for."""
        for record in self._queued():
            if record.external:
                await self._follow(record, ServeNow())

    async def _deploy(self) -> None:
        """Create granted deployments and wait (across passes) until they serve."""
        observed = [(r, await self._observe(r)) for r in self._in(Phase.DEPLOYING)]
        # One model list for the pass, read after every status so none is judged on a stale one.
        served = (
            await self._served_models()
            if any(status == conductor.READY for _, status in observed)
            else None
        )
        for record, status in observed:
            current = self._records.get(record.key)
            if current is None:
                continue
            if isinstance(status, Ending):
                await self._move(current, phase=Phase.REMOVING, ending=status)
                continue
            synced = served is not None and current.model in served
            step = conductor.deployment_step(
                current, status, synced, self._now, self._policy.deploy_timeout
            )
            await self._follow(current, step)

    async def _observe(self, record: CandidateRecord) -> str | Ending | None:
        """Create the deployment if not done yet, then read its status (None: not found); an
        Ending when NMP refuses the deployment."""
        try:
            if not record.created:
                await self._deployer.create(record.deployment_name, record.candidate)
                if await self._move(record, created=True) is None:
                    return UNREACHABLE
            return await self._deployer.status(record.deployment_name)
        except PermanentError as exc:
            return Ending(reason=EndReason.DEPLOY_FAILED, message=f"NMP refused: {exc}")
        except Exception as exc:
            _log.warning(
                "candidate.nmp_unreachable",
                run_id=str(record.run_id),
                model=record.model,
                error=f"{type(exc).__name__}: {exc}",
            )
            return UNREACHABLE

    async def _served_models(self) -> frozenset[str] | None:
        try:
            return await self._deployer.served_models()
        except Exception as exc:
            _log.warning("nim_proxy.unreachable", error=f"{type(exc).__name__}: {exc}")
            return None

    async def _follow(self, record: CandidateRecord, step: conductor.DeployStep) -> None:
        match step:
            case Wait():
                return
            case ServeNow():
                ready = self._runs[record.run_id].ready
                assert ready is not None
                policy = self._policy
                judge = conductor.judge_of(self._of_run(record.run_id))
                up = conductor.nim_up(
                    record, ready.payload, policy.namespace, policy.nim_url, judge
                )
                await self._emit_for(record, up)
                await self._move(record, phase=Phase.UP, up_at=self._now)
                _log.info("candidate.up", run_id=str(record.run_id), model=record.model)
            case Remove(ending):
                _log.warning(
                    "candidate.deploy_failed",
                    run_id=str(record.run_id),
                    model=record.model,
                    reason=ending.message,
                )
                await self._move(record, phase=Phase.REMOVING, ending=ending)
            case Vanished(ending):
                await self._end(record.model_copy(update={"ending": ending}))

    async def _conclude(self) -> None:
        """Publish the terminal event of every run whose candidates have all ended."""
        by_run = self._by_run()
        for run in self._runs.values():
            outcome = conductor.run_outcome(run, by_run[run.run_id], self._policy.judgement)
            if outcome is None:
                continue
            cause: Envelope[Any] | None = run.stopping or run.ready
            assert cause is not None, "an outcome needs a stopping event or the datasets"
            await self._emit(outcome, cause=cause)
            await self._repo.finish_run(run.run_id)
            _log.info("run.finished", run_id=str(run.run_id), outcome=outcome.EVENT_TYPE)


@contextmanager
def _logged_failure(record: CandidateRecord, step: str) -> Iterator[None]:
    """Log and swallow a step's failure, so one candidate's trouble never stops the pass for the
    others; the step is retried on the next pass."""
    try:
        yield
    except Exception as exc:
        _log.warning(
            f"candidate.{step}_failed",
            run_id=str(record.run_id),
            model=record.model,
            error=f"{type(exc).__name__}: {exc}",
        )
