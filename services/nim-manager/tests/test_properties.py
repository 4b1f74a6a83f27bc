"""Acceptance 2: over random interleavings of several runs' events (datasets, results,
cancellations, redeliveries, restarts, NMP outages, failing deployments), the GPUs deployed never
exceed the budget, and once the other services have answered, every deployment is removed and
every run ends exactly once."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import NimUp
from flywheel_contracts.run_config import CandidateConfig, EvalType
from flywheel_nim_manager.testing.fakes import (
    World,
    cancel_event,
    candidate,
    customization_done,
    dataset_failed_event,
    eval_done,
    ready_event,
)

pytestmark = pytest.mark.unit

EVAL_TYPES = (EvalType.BASE, EvalType.ICL, EvalType.CUSTOMIZED)
KINDS = ("ready", "cancel", "dataset_failed", "answer", "tick", "redeliver", "restart", "flap")


@dataclass(frozen=True)
class Spec:
    gpus: int
    customization: bool
    fails: bool
    start_polls: int


_specs = st.builds(
    Spec,
    gpus=st.integers(1, 3),
    customization=st.booleans(),
    fails=st.integers(0, 4).map(lambda n: n == 0),
    start_polls=st.integers(0, 3),
)
_runs = st.lists(st.lists(_specs, min_size=1, max_size=3), min_size=1, max_size=4)
_actions = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 50), st.booleans()), max_size=60
)


@dataclass
class Players:
    """The other services and clients: they publish inputs, and answer each nim.up with the
    evaluations and customization it is owed (some of them failing)."""

    world: World
    runs: list[tuple[UUID, list[CandidateConfig]]]
    delivered: list[Envelope[Any]] = field(default_factory=list)
    answered: set[tuple[UUID, str, str]] = field(default_factory=set)
    customization_ok: dict[tuple[UUID, str], bool] = field(default_factory=dict)

    async def deliver(self, event: Envelope[Any]) -> None:
        self.delivered.append(event)
        handlers: dict[str, Callable[[Envelope[Any]], Awaitable[None]]] = {
            "dataset.ready": self.world.service.on_dataset_ready,
            "dataset.failed": self.world.service.on_dataset_failed,
            "run.cancelled": self.world.service.on_run_cancelled,
            "eval.done": self.world.service.on_eval_done,
            "customization.done": self.world.service.on_customization_done,
        }
        await handlers[event.event_type](event)

    def owed(self) -> list[tuple[UUID, NimUp, str]]:
        """Answers due for every announced deployment, in a stable order."""
        due: list[tuple[UUID, NimUp, str]] = []
        for event in self.world.events.of("nim.up"):
            run_id, up = event.run_id, event.payload
            assert run_id is not None and isinstance(up, NimUp)
            model = up.candidate.model_name
            items = ["base", "icl"]
            if up.candidate.customization_enabled:
                items.append("customization")
                if self.customization_ok.get((run_id, model)):
                    items.append("customized")
            due += [(run_id, up, i) for i in items if (run_id, model, i) not in self.answered]
        return due

    async def answer(self, run_id: UUID, up: NimUp, item: str, ok: bool) -> None:
        model = up.candidate.model_name
        self.answered.add((run_id, model, item))
        if item == "customization":
            self.customization_ok[(run_id, model)] = ok
            error = None if ok else "diverged"
            await self.deliver(customization_done(run_id, up, error=error))
        else:
            await self.deliver(
                eval_done(run_id, model, EvalType(item), error=None if ok else "job failed")
            )


async def _scenario(budget: int, run_specs: list[list[Spec]], actions: list[Any]) -> None:
    world = World(budget=budget, deploy_timeout_s=20, work_timeout_s=40)
    runs = []
    for index, specs in enumerate(run_specs):
        candidates = [
            candidate(
                f"org/m{index}-{n}-1b", gpus=spec.gpus, customization_enabled=spec.customization
            )
            for n, spec in enumerate(specs)
        ]
        for spec, config in zip(specs, candidates, strict=True):
            world.deployer.slow[config.model_name] = spec.start_polls
            if spec.fails:
                world.deployer.failing.add(config.model_name)
        runs.append((uuid4(), candidates))
    players = Players(world, runs)
    creates_when_cancelled: dict[UUID, int] = {}

    def creates(run_id: UUID) -> int:
        return sum(run_id.hex in name for name in world.deployer.creates)

    def check() -> None:
        assert world.deployer.gpus_in_use() <= budget
        for run_id, count in creates_when_cancelled.items():
            assert creates(run_id) == count, "nothing is deployed for a cancelled run"

    for kind, number, flag in actions:
        run_id, candidates = runs[number % len(runs)]
        if kind == "ready":
            await players.deliver(ready_event(run_id, candidates, eval_types=EVAL_TYPES))
        elif kind == "cancel":
            await players.deliver(cancel_event(run_id))
            creates_when_cancelled.setdefault(run_id, creates(run_id))
        elif kind == "dataset_failed":
            await players.deliver(dataset_failed_event(run_id))
        elif kind == "answer" and (due := players.owed()):
            run, up, item = due[number % len(due)]
            await players.answer(run, up, item, ok=flag)
        elif kind == "tick":
            await world.tick(seconds=1 + number % 5)
        elif kind == "redeliver" and players.delivered:
            await players.deliver(players.delivered[number % len(players.delivered)])
        elif kind == "restart":
            world.restart()
        elif kind == "flap":
            world.deployer.unreachable = not world.deployer.unreachable
        check()

    # The other services keep answering; every run gets its datasets eventually.
    world.deployer.unreachable = False
    for run_id, candidates in runs:
        await players.deliver(ready_event(run_id, candidates, eval_types=EVAL_TYPES))
    for _ in range(200):
        if all(run.finished for run in world.repository.runs.values()):
            break
        for run, up, item in players.owed():
            await players.answer(run, up, item, ok=True)
        await world.tick()
        check()

    assert all(run.finished for run in world.repository.runs.values())
    assert world.deployer.deployments == {}
    assert world.deployer.peak_gpus <= budget
    for run_id, _ in runs:
        terminal = {
            e.event_id
            for e in world.events.published
            if e.run_id == run_id and e.event_type in ("run.completed", "run.failed")
        }
        assert len(terminal) == 1
    ups = {(e.run_id, e.payload.candidate_model) for e in world.events.of("nim.down")}
    for event in world.events.of("nim.up"):
        assert (event.run_id, event.payload.candidate.model_name) in ups


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(budget=st.integers(1, 5), run_specs=_runs, actions=_actions)
def test_budget_holds_and_every_deployment_is_removed(
    budget: int, run_specs: list[list[Spec]], actions: list[Any]
) -> None:
    asyncio.run(_scenario(budget, run_specs, actions))
