"""The service's job lifecycle with fakes: request, build, publish once; failures; cancellation
before, during and after a build; a repeated request; an outcome that could not be published."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from flywheel_contracts.envelope import Envelope, decode, encode, new_event
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.events import (
    DatasetFailed,
    DatasetFailureReason,
    DatasetReady,
    DatasetRef,
    FilterStats,
    RunCancelled,
    RunRequested,
    SplitCounts,
)
from flywheel_contracts.events.baseline import ProductionBaseline, ProductionModel
from flywheel_contracts.ids import derive_event_id
from flywheel_contracts.run_config import RunConfig, RunOverrides, WorkloadType
from flywheel_contracts.runtime.delivery import Headers, Origin, Outcome, RetryPolicy
from flywheel_contracts.runtime.dispatcher import EventDispatcher, InboundMessage, Route
from flywheel_contracts.runtime.testing import RecordedEvents, eventually
from flywheel_datasets.builder import Built
from flywheel_datasets.errors import NotEnoughRecords
from flywheel_datasets.repository import Job, JobStatus
from flywheel_datasets.run_defaults import RunDefaults
from flywheel_datasets.service import DatasetService, ServiceOptions, dataset_names

pytestmark = pytest.mark.unit

OWNER = "datasets.test"
STATS = FilterStats(fetched=3, invalid_format=0, unparsable_arguments=0, duplicates=0, selected=3)
COUNTS = SplitCounts(eval=1, icl=1, train=1, val=1)
BASELINE = ProductionBaseline(
    models=(ProductionModel(model="big", records=3),),
    records=3,
    records_with_usage=0,
    records_with_latency=0,
    requests_per_day=3.0,
)


def built_in(directory: Path) -> Built:
    """What a build leaves: one-record files under `directory` (which must exist)."""
    paths = {
        "eval": {"eval_data.jsonl": directory / "eval.jsonl"},
        "icl": {"eval_data.jsonl": directory / "icl.jsonl"},
        "train": {
            "training/train_data.jsonl": directory / "train.jsonl",
            "validation/val_data.jsonl": directory / "val.jsonl",
        },
    }
    for files in paths.values():
        for path in files.values():
            path.write_bytes(b"{}")
    return Built(
        workload_type=WorkloadType.TOOL_CALLING,
        eval_files=paths["eval"],
        icl_files=paths["icl"],
        train_files=paths["train"],
        counts=COUNTS,
        stats=STATS,
        stratified=False,
        baseline=BASELINE,
    )


class MemoryJobs:
    """JobStore in memory, with the repository's conditional updates."""

    def __init__(self) -> None:
        self.jobs: dict[UUID, dict[str, Any]] = {}

    async def ensure_indexes(self) -> None:
        return None

    def _job(self, run_id: UUID) -> Job:
        return Job.of({"_id": str(run_id), **self.jobs[run_id]})

    async def get(self, run_id: UUID) -> Job | None:
        return self._job(run_id) if run_id in self.jobs else None

    async def create(
        self,
        run_id: UUID,
        *,
        request: str,
        config: dict[str, Any] | None,
        outcome: str | None = None,
    ) -> Job | None:
        if run_id in self.jobs:
            return None
        status = JobStatus.FAILED if outcome else JobStatus.PENDING
        self.jobs[run_id] = {
            "status": status.value,
            "request": request,
            "config": config,
            "attempts": 0,
            "owner": None,
            "outcome": outcome,
            "published": outcome is None,
        }
        return self._job(run_id)

    async def tombstone(self, run_id: UUID) -> bool:
        if run_id in self.jobs:
            return False
        self.jobs[run_id] = {
            "status": "cancelled",
            "request": None,
            "outcome": None,
            "published": True,
        }
        return True

    async def settle_tombstone(self, run_id: UUID, *, request: str, outcome: str) -> bool:
        job = self.jobs.get(run_id)
        if job is None or job["request"] is not None:
            return False
        job.update(request=request, outcome=outcome, published=False)
        return True

    async def claim(self, owner: str, lease: timedelta) -> Job | None:
        for run_id, job in self.jobs.items():
            if job["status"] == "pending":
                job.update(status="building", owner=owner, attempts=job["attempts"] + 1)
                return self._job(run_id)
        return None

    async def renew(self, run_id: UUID, owner: str, lease: timedelta) -> bool:
        job = self.jobs[run_id]
        return bool(job["status"] == "building" and job["owner"] == owner)

    async def finish(self, run_id: UUID, owner: str, status: JobStatus, outcome: str) -> bool:
        job = self.jobs[run_id]
        if job["status"] != "building" or job["owner"] != owner:
            return False
        job.update(status=status.value, outcome=outcome, published=False, owner=None)
        return True

    async def release(self, run_id: UUID, owner: str) -> None:
        job = self.jobs[run_id]
        if job["status"] == "building" and job["owner"] == owner:
            job.update(status="pending", owner=None)

    async def cancel(self, run_id: UUID, outcome: str) -> bool:
        job = self.jobs[run_id]
        if job["status"] not in ("pending", "building"):
            return False
        job.update(status="cancelled", outcome=outcome, published=False)
        return True

    async def unpublished(self) -> list[Job]:
        return [self._job(run_id) for run_id, job in self.jobs.items() if not job["published"]]

    async def mark_published(self, run_id: UUID) -> None:
        self.jobs[run_id]["published"] = True


class GatedBuilder:
    """Builds `built_in` its directory (or raises `failure`) once `gate` is open; counts its builds."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()
        self.builds: list[RunConfig] = []
        self.directories: list[Path] = []
        self.failure: Exception | None = None

    async def build(self, config: RunConfig, until: datetime, directory: Path) -> Built:
        self.directories.append(directory)
        self.builds.append(config)
        self.started.set()
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return built_in(directory)


class MemoryStore:
    def __init__(self) -> None:
        self.published: dict[str, Mapping[str, Path]] = {}
        self.deleted: list[str] = []

    async def publish(self, name: str, files: Mapping[str, Path]) -> DatasetRef:
        self.published[name] = files
        return DatasetRef(namespace="ns", name=name, files_url=f"hf://datasets/ns/{name}")

    async def delete(self, name: str) -> None:
        self.deleted.append(name)


class FakeKafka:
    """Keeps what is published; refuses the next `failures` publishes."""

    def __init__(self) -> None:
        self.published: list[Envelope[Any]] = []
        self.failures = 0

    async def publish(self, envelope: Envelope[Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("kafka away")
        self.published.append(decode(envelope.model_dump_json().encode()))


new_datasets_event = RecordedEvents("datasets").new_event
"""What the kit's `new_event` builds for this service."""


@dataclass
class Harness:
    service: DatasetService
    jobs: MemoryJobs
    builder: GatedBuilder
    store: MemoryStore
    kafka: FakeKafka

    def outcomes(self, run_id: UUID) -> list[Envelope[Any]]:
        return [e for e in self.kafka.published if e.run_id == run_id]

    async def outcome(self, run_id: UUID) -> Envelope[Any]:
        await eventually(lambda: bool(self.outcomes(run_id)), timeout_s=5)
        (envelope,) = self.outcomes(run_id)
        return envelope


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    jobs, builder, store, kafka = MemoryJobs(), GatedBuilder(), MemoryStore(), FakeKafka()
    service = DatasetService(
        jobs,
        builder,
        store,
        RunDefaults.load(),
        new_event=new_datasets_event,
        publish=kafka.publish,
        options=ServiceOptions(
            owner=OWNER,
            lease=timedelta(seconds=30),
            reconcile_interval_s=0.01,
            max_concurrent_builds=1,
        ),
    )
    loop = asyncio.create_task(service.reconcile_forever())
    yield Harness(service, jobs, builder, store, kafka)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop


def _request(run_id: UUID | None = None, **overrides: Any) -> Envelope[RunRequested]:
    payload = RunRequested(
        workload_id="order-tools",
        client_id="acme",
        overrides=RunOverrides.model_validate(overrides),
    )
    return new_event(payload, producer="cli", run_id=run_id or uuid4())


def _cancel(run_id: UUID) -> Envelope[RunCancelled]:
    return new_event(RunCancelled(reason="changed my mind"), producer="cli", run_id=run_id)


async def test_a_request_is_built_uploaded_and_announced_once(harness: Harness) -> None:
    request = _request()
    assert request.run_id is not None
    await harness.service.on_run_requested(request)
    envelope = await harness.outcome(request.run_id)
    assert envelope.event_id == derive_event_id(request.event_id, "dataset.ready")
    assert envelope.causation_id == request.event_id
    ready = envelope.payload
    assert isinstance(ready, DatasetReady)
    names = dataset_names("order-tools", request.run_id)
    assert ready.context.datasets.eval.name == names["eval"]
    assert set(harness.store.published) == set(names.values())
    (directory,) = harness.builder.directories
    assert harness.store.published[names["train"]] == {
        "training/train_data.jsonl": directory / "train.jsonl",
        "validation/val_data.jsonl": directory / "val.jsonl",
    }
    assert not directory.exists(), "the files outlive the upload"
    assert ready.context.config.split.random_seed is not None
    assert ready.counts == COUNTS
    assert ready.baseline == BASELINE
    assert harness.jobs.jobs[request.run_id]["status"] == "done"


async def test_a_repeated_request_for_the_run_builds_nothing(harness: Harness) -> None:
    request = _request()
    assert request.run_id is not None
    await harness.service.on_run_requested(request)
    await harness.outcome(request.run_id)
    await harness.service.on_run_requested(_request(request.run_id))
    await asyncio.sleep(0.1)
    assert len(harness.builder.builds) == 1
    assert len(harness.outcomes(request.run_id)) == 1


async def test_invalid_overrides_fail_the_run_without_building(harness: Harness) -> None:
    request = _request(eval_size=50, limit=50)
    assert request.run_id is not None
    await harness.service.on_run_requested(request)
    failed = (await harness.outcome(request.run_id)).payload
    assert isinstance(failed, DatasetFailed)
    assert failed.reason is DatasetFailureReason.INVALID_CONFIG
    assert "eval_size must be below limit" in failed.message
    assert not harness.builder.builds


async def test_a_build_failure_is_announced_with_its_reason_and_stats(harness: Harness) -> None:
    harness.builder.failure = NotEnoughRecords("12 usable records, need 50", stats=STATS)
    request = _request()
    assert request.run_id is not None
    await harness.service.on_run_requested(request)
    failed = (await harness.outcome(request.run_id)).payload
    assert isinstance(failed, DatasetFailed)
    assert (failed.reason, failed.message, failed.stats) == (
        DatasetFailureReason.NOT_ENOUGH_RECORDS,
        "12 usable records, need 50",
        STATS,
    )
    assert not harness.store.published


async def test_a_cancellation_during_the_build_stops_it_and_removes_its_datasets(
    harness: Harness,
) -> None:
    harness.builder.gate.clear()
    request = _request()
    assert request.run_id is not None
    await harness.service.on_run_requested(request)
    await asyncio.wait_for(harness.builder.started.wait(), 5)
    assert [w.run_id for w in await harness.service.in_flight()] == [request.run_id]
    await harness.service.on_run_cancelled(_cancel(request.run_id))
    failed = (await harness.outcome(request.run_id)).payload
    assert isinstance(failed, DatasetFailed)
    assert failed.reason is DatasetFailureReason.CANCELLED
    assert "changed my mind" in failed.message
    await eventually(lambda: len(harness.store.deleted) == 3, timeout_s=5)
    assert set(harness.store.deleted) == set(dataset_names("order-tools", request.run_id).values())
    assert not await harness.service.in_flight()


async def test_a_cancellation_before_the_request_wins(harness: Harness) -> None:
    run_id = uuid4()
    await harness.service.on_run_cancelled(_cancel(run_id))
    await harness.service.on_run_requested(_request(run_id))
    failed = (await harness.outcome(run_id)).payload
    assert isinstance(failed, DatasetFailed)
    assert failed.reason is DatasetFailureReason.CANCELLED
    assert not harness.builder.builds


async def test_a_cancellation_after_the_datasets_are_ready_changes_nothing(
    harness: Harness,
) -> None:
    request = _request()
    assert request.run_id is not None
    await harness.service.on_run_requested(request)
    await harness.outcome(request.run_id)
    await harness.service.on_run_cancelled(_cancel(request.run_id))
    await asyncio.sleep(0.1)
    assert [type(e.payload) for e in harness.outcomes(request.run_id)] == [DatasetReady]
    assert not harness.store.deleted


async def test_an_outcome_kafka_refused_is_published_later(harness: Harness) -> None:
    harness.kafka.failures = 2
    request = _request()
    assert request.run_id is not None
    await harness.service.on_run_requested(request)
    envelope = await harness.outcome(request.run_id)
    assert isinstance(envelope.payload, DatasetReady)
    assert harness.jobs.jobs[request.run_id]["published"]


def test_dataset_names_are_deterministic_and_nmp_safe() -> None:
    run_id = UUID("0123456789abcdef0123456789abcdef")
    names = dataset_names("Customer/Router@v2", run_id)
    assert names == {
        "eval": "flywheel-eval-customer-router-v2-0123456789ab",
        "icl": "flywheel-icl-customer-router-v2-0123456789ab",
        "train": "flywheel-train-customer-router-v2-0123456789ab",
    }
    assert dataset_names("Customer/Router@v2", run_id) == names
    long_names = dataset_names("w" * 100, run_id)
    assert all(len(name) <= 63 for name in long_names.values())
    assert len(set(long_names.values())) == 3


def _raw_request(run_id: UUID, **overrides: Any) -> bytes:
    """A `run.requested` as a producer bypassing the contracts' validation would send it."""
    envelope = json.loads(encode(_request(run_id)))
    envelope["payload"]["overrides"] = overrides
    return json.dumps(envelope).encode()


async def test_an_override_beyond_its_bound_fails_the_run_naming_field_and_bound(
    harness: Harness,
) -> None:
    run_id = uuid4()
    raw = _raw_request(run_id, limit=10**12)
    with pytest.raises(InvalidEvent) as undecodable:  # what the kit sees before dead-lettering
        decode(raw)

    await harness.service.on_invalid_run_request(raw, undecodable.value)

    envelope = await harness.outcome(run_id)
    failed = envelope.payload
    assert isinstance(failed, DatasetFailed)
    assert failed.reason is DatasetFailureReason.INVALID_CONFIG
    assert "limit: Input should be less than or equal to 1000000" in failed.message
    assert str(envelope.causation_id) == json.loads(raw)["event_id"]
    assert not harness.builder.builds


async def test_the_kit_fails_the_run_of_an_out_of_bounds_request_and_still_dead_letters_it(
    harness: Harness,
) -> None:
    sent: list[tuple[str, bytes | None]] = []

    class Sender:
        async def send(
            self, topic: str, value: bytes | None, key: bytes | None, headers: Headers
        ) -> None:
            sent.append((topic, value))

    class Processed:
        async def seen(self, event_id: UUID) -> bool:
            return False

        async def mark(self, event_id: UUID, event_type: str) -> None:
            return None

    dispatcher = EventDispatcher(
        service="datasets",
        routes={
            "run.requested": Route(
                RunRequested,
                harness.service.on_run_requested,
                harness.service.on_invalid_run_request,
            )
        },
        dead_letters=Sender(),
        processed=Processed(),
        policy=RetryPolicy(max_attempts=1),
    )
    run_id = uuid4()
    raw = _raw_request(
        run_id, candidates=[{"model_name": f"org/m-{n}", "gpus": 64} for n in range(40)]
    )

    outcome = await dispatcher.dispatch(
        InboundMessage(Origin("run.requested", 0, 3), None, raw, [])
    )

    assert outcome is Outcome.DEAD_LETTERED
    assert sent == [("run.requested.dlq", raw)]
    failed = (await harness.outcome(run_id)).payload
    assert isinstance(failed, DatasetFailed)
    assert "candidates: Tuple should have at most 16 items" in failed.message


async def test_a_request_invalid_apart_from_its_overrides_is_only_dead_lettered(
    harness: Harness,
) -> None:
    envelope = json.loads(encode(_request(uuid4())))
    envelope["payload"]["workload_id"] = ""
    raw = json.dumps(envelope).encode()

    await harness.service.on_invalid_run_request(raw, InvalidEvent("workload_id too short"))

    await asyncio.sleep(0.05)
    assert harness.jobs.jobs == {}
    assert harness.kafka.published == []


async def test_a_build_started_max_attempts_times_without_an_outcome_fails_the_run(
    harness: Harness,
) -> None:
    request = _request()
    assert request.run_id is not None
    config = RunDefaults.load().resolve(request.payload, request.run_id)
    # Three builds were claimed and never finished (their instances died mid-build).
    await harness.jobs.create(
        request.run_id, request=encode(request).decode(), config=config.model_dump(mode="json")
    )
    harness.jobs.jobs[request.run_id]["attempts"] = 3

    envelope = await harness.outcome(request.run_id)

    failed = envelope.payload
    assert isinstance(failed, DatasetFailed)
    assert failed.reason is DatasetFailureReason.INTERNAL_ERROR
    assert "started 3 times (max_build_attempts)" in failed.message
    assert envelope.causation_id == request.event_id
    assert not harness.builder.builds
    assert harness.jobs.jobs[request.run_id]["status"] == "failed"


async def test_a_build_below_max_attempts_is_tried_again(harness: Harness) -> None:
    request = _request()
    assert request.run_id is not None
    config = RunDefaults.load().resolve(request.payload, request.run_id)
    await harness.jobs.create(
        request.run_id, request=encode(request).decode(), config=config.model_dump(mode="json")
    )
    harness.jobs.jobs[request.run_id]["attempts"] = 2

    assert isinstance((await harness.outcome(request.run_id)).payload, DatasetReady)
    assert len(harness.builder.builds) == 1
