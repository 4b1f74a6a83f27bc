"""What the NMP emulator says about runs: from its state, what is live now and which jobs exist;
from its timeline, how many GPUs deployments and training jobs held together at any moment, and
how often each deployment was requested (so a duplicate shows even after it was removed).

The timeline (`GET /emulator/timeline`) lists every lifecycle step in the order it happened. A
deployment holds its GPUs from `started` (granted, starting) until `deleted` or `failed`; a
training job from `started` until `completed`, `failed` or `cancelled`. Replaying those steps
gives the GPUs in use after each one, so the peak is exact, not sampled.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

UNFINISHED_JOB = frozenset({"created", "pending", "running"})
_HOLDS_GPUS = frozenset({"deployment", "customization"})
_RELEASES = frozenset({"deleted", "failed", "completed", "cancelled"})
_GPUS = re.compile(r"(\d+) GPU")


@dataclass(frozen=True)
class GpuPeak:
    gpus: int
    holders: dict[str, int]
    """Who held how many GPUs at the (first) peak, e.g. `deployment:ns/name`."""


def state(emulator: httpx.Client) -> dict[str, Any]:
    response = emulator.get("/emulator/state")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def live_deployments(emulator: httpx.Client) -> list[str]:
    return list(state(emulator)["deployments"])


def unfinished_jobs(emulator: httpx.Client) -> list[str]:
    current = state(emulator)
    jobs = {**current["customization_jobs"], **current["evaluation_jobs"]}
    return [key for key, job in jobs.items() if job["status"] in UNFINISHED_JOB]


def customization_jobs(emulator: httpx.Client, run_id: UUID) -> dict[str, dict[str, Any]]:
    """The run's customization jobs the emulator ever created (job names carry the run id)."""
    jobs: dict[str, dict[str, Any]] = state(emulator)["customization_jobs"]
    return {key: job for key, job in jobs.items() if run_id.hex in job["name"]}


def timeline(emulator: httpx.Client, kind: str | None = None) -> list[dict[str, Any]]:
    response = emulator.get("/emulator/timeline", params={"kind": kind} if kind else None)
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def holdings(events: Iterable[dict[str, Any]]) -> Iterator[dict[str, int]]:
    """Who holds how many GPUs (e.g. `deployment:ns/name`), after each grant in `events`."""
    held: dict[str, int] = {}
    for event in events:
        if event["kind"] not in _HOLDS_GPUS:
            continue
        holder = f"{event['kind']}:{event['id']}"
        if event["event"] == "started":
            held[holder] = _gpus(event)
            yield dict(held)
        elif event["event"] in _RELEASES:
            held.pop(holder, None)


def peak_gpus(events: Iterable[dict[str, Any]]) -> GpuPeak:
    """The most GPUs deployments and training jobs held at once over `events`."""
    peak = GpuPeak(0, {})
    for held in holdings(events):
        if sum(held.values()) > peak.gpus:
            peak = GpuPeak(sum(held.values()), held)
    return peak


def _gpus(event: dict[str, Any]) -> int:
    found = _GPUS.search(event["detail"])
    assert found is not None, f"the timeline no longer says how many GPUs: {event}"
    return int(found.group(1))


def deployment_requests(events: Iterable[dict[str, Any]]) -> Counter[str]:
    """How often each deployment (`namespace/name`) was requested."""
    return Counter(
        e["id"] for e in events if e["kind"] == "deployment" and e["event"] == "requested"
    )
