"""Driving runs and checking what they leave: requests go onto the flywheel's topics, outcomes
come from the tap, leftovers from the emulator and the janitor."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import httpx

from flywheel_contracts.cli.requests import run_requested
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import LeaderboardEntry, RunCompleted
from flywheel_contracts.run_config import CandidateConfig, EvalType, RunOverrides
from flywheel_contracts.runtime import KafkaSettings, Publisher
from flywheel_contracts.runtime.nmp.testing.sdk import live_resources
from flywheel_contracts.runtime.testing import eventually
from flywheel_localstack.services import Flywheel, FlywheelSetup
from flywheel_nim_manager.testing.process import EventTap
from tests.support.emulator import live_deployments, unfinished_jobs

RUN_TIMEOUT_S = 150.0


def kafka(setup: FlywheelSetup) -> KafkaSettings:
    return setup.servers.kafka(setup.topic_prefix)


async def publish(setup: FlywheelSetup, *envelopes: Envelope[Any]) -> None:
    publisher = Publisher(kafka(setup), client_id=f"e2e-client-{uuid.uuid4().hex[:6]}")
    publisher.start()
    try:
        for envelope in envelopes:
            await publisher.publish(envelope)
    finally:
        await publisher.close()


def unique(events: Iterable[Envelope[Any]]) -> list[Envelope[Any]]:
    """One envelope per event id: a redelivered event counts once."""
    return list({e.event_id: e for e in events}.values())


def run_request(
    workload_id: str, client_id: str, overrides: RunOverrides, requested_by: str = "e2e"
) -> Envelope[Any]:
    """A run.requested with a fresh run id."""
    return run_requested(workload_id, client_id, overrides, requested_by=requested_by)


async def start_run(
    setup: FlywheelSetup,
    workload_id: str,
    client_id: str,
    overrides: RunOverrides,
    requested_by: str = "e2e",
) -> UUID:
    envelope = run_request(workload_id, client_id, overrides, requested_by)
    await publish(setup, envelope)
    assert envelope.run_id is not None
    return envelope.run_id


async def outcome(tap: EventTap, run_id: UUID, timeout_s: float = RUN_TIMEOUT_S) -> Envelope[Any]:
    """The run's terminal event, run.completed or run.failed. A run that does not end in time
    fails the test with the events it got to, so the failure says where it stopped."""
    ended: list[Envelope[Any]] = []

    def terminal() -> bool:
        ended[:] = tap.of("run.completed", run_id) + tap.of("run.failed", run_id)
        return bool(ended)

    try:
        await eventually(terminal, timeout_s=timeout_s)
    except AssertionError:
        raise AssertionError(
            f"run {run_id} did not end within {timeout_s:.0f}s; {trail(tap, run_id)}"
        ) from None
    return ended[0]


def trail(tap: EventTap, run_id: UUID) -> str:
    """The run's tapped events in the order they occurred, each with its seconds since the
    first and what it was about."""
    events = sorted(tap.of_run(run_id), key=lambda e: e.occurred_at)
    if not events:
        return "no event of the run was seen"
    start = events[0].occurred_at
    lines = [
        f"+{(e.occurred_at - start).total_seconds():7.1f}s {e.event_type} {_about(e.payload)}"
        for e in events
    ]
    return "its events:\n" + "\n".join(lines)


def _about(payload: Any) -> str:
    candidate = getattr(payload, "candidate", None)
    parts = [candidate.model_name] if candidate is not None else []
    for name in ("candidate_model", "eval_type", "output_model", "customized_model", "reason"):
        value = getattr(payload, name, None)
        if value:
            parts.append(f"{name}={value}")
    error = getattr(payload, "error", None)
    if error:
        parts.append(f"error={str(error)[:160]}")
    return " ".join(parts)


async def completed(tap: EventTap, run_id: UUID, timeout_s: float = RUN_TIMEOUT_S) -> RunCompleted:
    ended = await outcome(tap, run_id, timeout_s)
    assert isinstance(ended.payload, RunCompleted), ended.payload
    return ended.payload


def expected_entries(
    candidates: Sequence[CandidateConfig], eval_types: Iterable[EvalType] = tuple(EvalType)
) -> set[tuple[str, EvalType]]:
    """The leaderboard entries a run of `candidates` must have: base and ICL for each, and the
    customized evaluation for those with customization on."""
    wanted = set(eval_types)
    return {
        (c.model_name, t)
        for c in candidates
        for t in wanted
        if t is not EvalType.CUSTOMIZED or c.customization_enabled
    }


def assert_scored(
    completed: RunCompleted, expected: set[tuple[str, EvalType]], metric: str
) -> dict[tuple[str, EvalType], LeaderboardEntry]:
    """Exactly the `expected` entries, each without error and with `metric` scored over at least
    one record; returns them by (candidate, evaluation type)."""
    entries = {(e.candidate_model, e.eval_type): e for e in completed.leaderboard.entries}
    assert set(entries) == expected, sorted(set(entries) ^ expected)
    for key, entry in entries.items():
        assert entry.error is None, (key, entry.error)
        scores = {score.name: score for score in entry.scores}
        assert metric in scores, (key, sorted(scores))
        score = scores[metric]
        assert score.n - score.failed > 0, (key, score)
    return entries


def ledger(flywheel: Flywheel, run_id: UUID) -> dict[str, bool]:
    """The run's resources in the janitor's ledger: ref -> still live."""
    response = httpx.get(f"{flywheel['janitor'].url}/ledger/runs/{run_id}", timeout=10)
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    return {r["ref"]: r["live"] for r in response.json()["resources"]}


def live_in_ledger(flywheel: Flywheel, run_id: UUID) -> list[str]:
    """The run's resources the janitor still holds live."""
    return [ref for ref, live in ledger(flywheel, run_id).items() if live]


async def assert_nothing_left(
    emulator: httpx.Client, flywheel: Flywheel, run_ids: Iterable[UUID], timeout_s: float = 30
) -> None:
    """No deployment and no unfinished job in NMP, in any namespace (the emulator's state, and
    the official SDK's list calls), nothing live in the janitor's ledger."""
    await eventually(lambda: not live_deployments(emulator), timeout_s=timeout_s)
    await eventually(lambda: not unfinished_jobs(emulator), timeout_s=timeout_s)
    assert await live_resources(str(emulator.base_url)) == []
    runs = tuple(run_ids)
    await eventually(
        lambda: not any(live_in_ledger(flywheel, r) for r in runs), timeout_s=timeout_s
    )
