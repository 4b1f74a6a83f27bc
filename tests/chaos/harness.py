"""A chaos scenario's hands: request a run, break a service or a server at a chosen moment,
bring it back, and verify the run's outcome and everything it left behind."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from confluent_kafka import KafkaError, Producer

from flywheel_contracts.events import DatasetReady
from flywheel_contracts.run_config import DEMO_CANDIDATES, CandidateConfig, EvalType, RunOverrides
from flywheel_contracts.runtime.poison import poison_for
from flywheel_contracts.runtime.testing import ServiceProcess, eventually
from flywheel_contracts.traffic import ROUTER
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_localstack.services import SERVICES, Flywheel, FlywheelSetup, answers_ready
from flywheel_nim_manager.testing.process import EventTap
from tests.chaos import checks
from tests.chaos.faults import Moment
from tests.chaos.report import Scenario
from tests.chaos.traffic import Batch
from tests.support.emulator import customization_jobs, deployment_requests, timeline
from tests.support.runs import (
    assert_nothing_left,
    assert_scored,
    completed,
    expected_entries,
    ledger,
    start_run,
    unique,
)
from tests.support.world import TAPPED

# The demo's run: three one-GPU candidates, the first also customized, so every service has work.
CANDIDATES = DEMO_CANDIDATES
EVAL_SIZE = 10
RUN_TIMEOUT_S = 300.0
SETTLE_TIMEOUT_S = 90.0
SERVICE_READY_S = 180.0


@dataclass(frozen=True)
class Run:
    run_id: UUID
    requested_at: float
    batch: Batch
    candidates: tuple[CandidateConfig, ...]

    @property
    def customized(self) -> frozenset[str]:
        return frozenset(c.model_name for c in self.candidates if c.customization_enabled)

    @property
    def evaluations(self) -> frozenset[tuple[str, EvalType]]:
        return frozenset(expected_entries(self.candidates))


@dataclass(frozen=True)
class Outage:
    what: str
    down: Callable[[], Awaitable[None]]
    up: Callable[[], Awaitable[None]]
    """Returns once the target is usable again."""

    async def strike(self, down_s: float, meanwhile: Callable[[], None] = lambda: None) -> float:
        """Take the target down, run `meanwhile`, wait `down_s`, bring it back; the seconds
        from taking it down until it was usable again."""
        started = time.monotonic()
        await self.down()
        meanwhile()
        await asyncio.sleep(down_s)
        await self.up()
        return time.monotonic() - started


@dataclass(frozen=True)
class Harness:
    stack: StackHandle
    setup: FlywheelSetup
    flywheel: Flywheel
    tap: EventTap
    emulator_process: ServiceProcess
    emulator: httpx.Client

    async def request_run(
        self,
        batch: Batch,
        limit: int | None = None,
        candidates: tuple[CandidateConfig, ...] = CANDIDATES,
    ) -> Run:
        """`candidates` (the demo's) on `batch`; `limit` records at most (the run default)."""
        overrides = RunOverrides(
            candidates=candidates, eval_size=EVAL_SIZE, random_seed=7, epochs=1, limit=limit
        )
        run_id = await start_run(self.setup, ROUTER, batch.client_id, overrides, "chaos")
        return Run(run_id, time.monotonic(), batch, candidates)

    def moment(self, run: Run) -> Moment:
        return Moment.now(self.tap, run.run_id, run.requested_at, TAPPED)

    def crash(self, service: str) -> Outage:
        """SIGKILL one service, as a crash would; brought back on the same port."""
        process = self.flywheel[service]

        async def down() -> None:
            process.kill()

        async def up() -> None:
            await asyncio.to_thread(process.start, SERVICE_READY_S)

        return Outage(f"SIGKILL {service}", down, up)

    def restart(self, server: str) -> Outage:
        """Stop one server of the stack (SIGTERM), then start it again."""

        async def down() -> None:
            await asyncio.to_thread(self.stack.stop, server)

        async def up() -> None:
            await asyncio.to_thread(self.stack.start, server)

        return Outage(f"restart {server}", down, up)

    def kill_server(self, server: str) -> Outage:
        """SIGKILL one server of the stack, as a crash would, then start it again."""

        async def down() -> None:
            await asyncio.to_thread(self.stack.kill, server)

        async def up() -> None:
            await asyncio.to_thread(self.stack.start, server)

        return Outage(f"SIGKILL {server}", down, up)

    def kill_emulator(self) -> Outage:
        """SIGKILL the NMP emulator, as a crash of the platform would, then start it again on
        its state: NMP unreachable meanwhile, every deployment and job back afterwards."""

        async def down() -> None:
            await asyncio.to_thread(self.emulator_process.kill)

        async def up() -> None:
            await asyncio.to_thread(self.emulator_process.start)

        return Outage("SIGKILL nmp-emulator", down, up)

    def freeze(self, service: str) -> Outage:
        """SIGSTOP one service, then SIGCONT it: it wakes up holding stale state (a consumer
        group it was expelled from, leases others may have taken)."""
        process = self.flywheel[service]

        async def down() -> None:
            process.freeze()

        async def up() -> None:
            process.thaw()

        return Outage(f"SIGSTOP {service}", down, up)

    def produce_poison(self, event_types: tuple[str, ...]) -> dict[str, dict[str, bytes | None]]:
        """Every poison class onto the flywheel's topic of each of `event_types`, keyed by the
        run-free name of its class (header `poison` too); what was sent, by topic."""
        kafka = self.setup.servers.kafka(self.setup.topic_prefix)
        producer = Producer({**kafka.client_config(), "message.max.bytes": 4 * 1024 * 1024})
        failures: list[KafkaError] = []
        sent: dict[str, dict[str, bytes | None]] = {}
        for event_type in event_types:
            topic = kafka.topic(event_type)
            sent[topic] = poison_for(event_type)
            for name, value in sent[topic].items():
                producer.produce(
                    topic,
                    value=value,
                    key=name.encode(),
                    headers=[("poison", name.encode())],
                    on_delivery=lambda error, _m: failures.append(error) if error else None,
                )
        assert producer.flush(30) == 0 and not failures, failures
        return sent

    def dead_letters(self) -> dict[str, int]:
        """Messages in each of the flywheel's dead-letter topics."""
        return checks.dead_letters(self.setup)

    async def verify_run(
        self, scenario: Scenario, run: Run, timeout_s: float = RUN_TIMEOUT_S
    ) -> None:
        """The run completed (within `timeout_s` of now) with every evaluation, once, and left
        nothing behind."""
        run_id = run.run_id
        result = await completed(self.tap, run_id, timeout_s)
        scenario.check(f"run.completed {time.monotonic() - run.requested_at:.1f}s after request")
        assert_scored(result, expected_entries(run.candidates), "function_name_and_args_accuracy")
        scenario.check(f"leaderboard: all {len(run.evaluations)} evaluations, none in error")

        await self.tap.wait_for(
            "nim.down", run_id, count=len(run.candidates), timeout_s=SETTLE_TIMEOUT_S
        )
        # First the janitor must have caught up: a restarted janitor (or one whose broker
        # restarted) rejoins its consumer group only after the old member's session expires,
        # and a run it has not read yet would look clean in its ledger.
        await self._no_duplicate_resources(scenario, run)
        await assert_nothing_left(self.emulator, self.flywheel, [run_id], SETTLE_TIMEOUT_S)
        scenario.check("nothing left: no deployment, no unfinished job, nothing live in ledger")
        self._no_duplicate_events(scenario, run)
        self._no_lost_record(scenario, run)
        await self.services_serve(scenario)

    async def services_serve(self, scenario: Scenario) -> None:
        dead = [name for name in SERVICES if not self.flywheel[name].alive]
        assert not dead, f"services exited: {dead}"
        await eventually(
            lambda: all(answers_ready(self.flywheel[name].url) for name in SERVICES),
            timeout_s=60,
        )
        scenario.check("all six services alive and ready")

    def _no_duplicate_events(self, scenario: Scenario, run: Run) -> None:
        run_id = run.run_id

        def once(event_type: str, key: Any, expected: set[Any]) -> None:
            counted = checks.distinct(self.tap, event_type, run_id, key)
            assert counted == dict.fromkeys(expected, 1), (event_type, counted)

        terminal = checks.distinct(self.tap, "run.completed", run_id, lambda _: "terminal")
        terminal += checks.distinct(self.tap, "run.failed", run_id, lambda _: "terminal")
        assert terminal["terminal"] == 1, f"{terminal['terminal']} distinct terminal events"
        copies = checks.copies(self.tap, "run.completed", run_id)
        models = {c.model_name for c in run.candidates}
        once("dataset.ready", lambda _: "ready", {"ready"})
        once("nim.up", lambda p: p.candidate.model_name, models)
        once("nim.down", lambda p: p.candidate_model, models)
        once("customization.done", lambda p: p.candidate_model, set(run.customized))
        once("eval.done", lambda p: (p.candidate_model, p.eval_type), set(run.evaluations))
        assert not self.tap.of("nim.failed", run_id), self.tap.of("nim.failed", run_id)
        scenario.check(
            f"one terminal event ({copies} message(s) of it), one dataset.ready, one nim.up and "
            f"nim.down per candidate, one customization.done, one eval.done per evaluation, "
            f"no nim.failed"
        )

    async def _no_duplicate_resources(self, scenario: Scenario, run: Run) -> None:
        run_id = run.run_id
        deployments = Counter(
            {
                name: count
                for name, count in deployment_requests(timeline(self.emulator)).items()
                if run_id.hex in name
            }
        )
        assert len(deployments) == len(run.candidates), deployments
        assert set(deployments.values()) == {1}, f"a deployment was created twice: {deployments}"
        jobs = customization_jobs(self.emulator, run_id)
        assert len(jobs) == len(run.customized), f"customization jobs: {sorted(jobs)}"
        created = set(deployments) | set(jobs)

        def untracked() -> set[str]:
            return created - set(ledger(self.flywheel, run_id))

        with contextlib.suppress(AssertionError):  # the assertion below says what is missing
            await eventually(lambda: not untracked(), SETTLE_TIMEOUT_S)
        missing = untracked()
        assert not missing, f"resources the janitor never tracked: {sorted(missing)}"
        scenario.check(
            f"emulator history: {len(deployments)} deployments created once each, "
            f"{len(jobs)} customization job; the janitor tracked all of them"
        )

    def _no_lost_record(self, scenario: Scenario, run: Run) -> None:
        [ready] = unique(self.tap.of("dataset.ready", run.run_id))
        payload: DatasetReady = ready.payload
        assert payload.stats.fetched == run.batch.router_records, (
            f"the run read {payload.stats.fetched} records, {run.batch.router_records} were shipped"
        )
        assert payload.counts.eval == EVAL_SIZE, payload.counts
        scenario.check(
            f"no lost record: the run read all {payload.stats.fetched} {ROUTER} records shipped"
        )
