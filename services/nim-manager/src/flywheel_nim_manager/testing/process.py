"""Helpers that run nim-manager against real servers: the process itself, a tap on its topics,
and stand-ins for the evaluator and customizer that answer every nim.up. Used by nim-manager's
integration tests and benchmark, and by end-to-end suites."""

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from uuid import UUID

import httpx
from confluent_kafka import Consumer
from fastapi import FastAPI

from flywheel_contracts import catalog
from flywheel_contracts.envelope import Envelope, decode, new_event
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.events import NimUp, RunCompleted
from flywheel_contracts.run_config import CandidateConfig, EvalType
from flywheel_contracts.runtime import KafkaSettings, MongoSettings, Publisher
from flywheel_contracts.runtime.nmp import NmpSettings
from flywheel_contracts.runtime.testing import ServiceProcess
from flywheel_contracts.runtime.topics import ensure_topics, new_topics
from flywheel_nim_manager.app import create_app
from flywheel_nim_manager.config import NimManagerSettings
from flywheel_nim_manager.testing.fakes import customization, evaluation, ready_event

_PREFIX = "FLYWHEEL_NIM_MANAGER_"


def unique_prefix() -> str:
    """A topic prefix of its own for one test (module)."""
    return f"t{uuid.uuid4().hex[:8]}."


@dataclass(frozen=True)
class EmulatorAdmin:
    """The NMP emulator's admin API (not NMP): timings, timeline and state."""

    url: str
    admin: httpx.Client

    def set_deploy_seconds(self, seconds: float) -> None:
        timings = self.admin.get("/emulator/timings").json()
        self.admin.put("/emulator/timings", json={**timings, "deploy_seconds": seconds})

    def timeline(self, run_id: UUID) -> list[dict[str, Any]]:
        """The run's deployment events (requested, started, ready, failed, deleted)."""
        events = self.admin.get("/emulator/timeline", params={"kind": "deployment"}).json()
        return [e for e in events["events"] if run_id.hex in e["id"]]

    def spans(self, run_id: UUID) -> dict[str, dict[str, float]]:
        """Per deployment of the run, when each of its events first happened."""
        spans: dict[str, dict[str, float]] = {}
        for event in self.timeline(run_id):
            spans.setdefault(event["id"], {}).setdefault(event["event"], event["at"])
        return spans

    def live(self, run_id: UUID) -> list[str]:
        """The run's deployments that exist now."""
        deployments = self.admin.get("/emulator/state").json()["deployments"]
        return [key for key in deployments if run_id.hex in key]


@dataclass(frozen=True)
class Harness:
    """One test's nim-manager setup: the servers, a topic prefix and a database of its own."""

    kafka_bootstrap: str
    mongo_url: str
    emulator: EmulatorAdmin
    prefix: str
    database: str

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.kafka_bootstrap, topic_prefix=self.prefix)

    def settings(self, **extra: Any) -> NimManagerSettings:
        """Settings of an in-process nim-manager; `extra` overrides (e.g. gpu_budget=1)."""
        url = self.emulator.url
        fields: dict[str, Any] = {
            "kafka": self.kafka,
            "mongo": MongoSettings(url=self.mongo_url, database=self.database),
            "nmp": NmpSettings(nemo_base_url=url, nim_base_url=url, datastore_base_url=url),
            "tick_interval_s": 0.1,
            "instance_id": f"test-{uuid.uuid4().hex[:8]}",
            **extra,
        }
        return NimManagerSettings(**fields)

    def env(self, **extra: object) -> dict[str, str]:
        """`FLYWHEEL_NIM_MANAGER_*` variables of a nim-manager process with the same setup;
        `extra` sets any other setting by its field name (e.g. gpu_budget=1, kafka__linger_ms=5)."""
        url = self.emulator.url
        env: dict[str, object] = {
            "kafka__bootstrap_servers": self.kafka_bootstrap,
            "kafka__topic_prefix": self.prefix,
            "mongo__url": self.mongo_url,
            "mongo__database": self.database,
            "nmp__nemo_base_url": url,
            "nmp__nim_base_url": url,
            "nmp__datastore_base_url": url,
            **extra,
        }
        return {f"{_PREFIX}{name.upper()}": str(value) for name, value in env.items()}

    async def complete_run(
        self, candidates: Sequence[CandidateConfig], **settings: Any
    ) -> "FinishedRun":
        """One run through an in-process nim-manager with these settings, the evaluator stood
        in for: from dataset.ready published to run.completed received."""
        run_id = uuid.uuid4()
        async with (
            EventTap(self.kafka, TAPPED) as tap,
            serving(self.settings(**settings)),
            StandIns(tap, self.kafka),
        ):
            started = time.monotonic()
            await self.publish(ready_event(run_id, candidates))
            [completed] = await tap.wait_for("run.completed", run_id, timeout_s=120)
            elapsed = time.monotonic() - started
            downs = await tap.wait_for("nim.down", run_id, count=len(candidates))
        assert isinstance(completed.payload, RunCompleted)
        return FinishedRun(run_id, completed.payload, len(downs), elapsed)

    async def publish(self, *events: Envelope[Any]) -> None:
        publisher = Publisher(self.kafka, client_id=f"test-inputs-{uuid.uuid4().hex[:6]}")
        publisher.start()
        try:
            await publisher.publish_many(events)
        finally:
            await publisher.close()


@dataclass(frozen=True)
class FinishedRun:
    run_id: UUID
    completed: RunCompleted
    removed: int
    """nim.down events seen."""
    elapsed_s: float


@asynccontextmanager
async def serving(settings: NimManagerSettings) -> AsyncIterator[FastAPI]:
    """nim-manager in this process, from start to graceful stop."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


class NimManagerProcess(ServiceProcess):
    """`python -m flywheel_nim_manager` with the given environment, its output in `log_path`."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        super().__init__("flywheel_nim_manager", _PREFIX, env, log_path)

    def scheduler(self) -> dict[str, Any]:
        """GET /scheduler: whether this instance leads."""
        body: dict[str, Any] = httpx.get(f"{self.url}/scheduler", timeout=5).json()
        return body


class EventTap:
    """Every envelope on some (prefixed) topics, read from their beginning by a background
    thread. The topics are created first if missing, so the tap may start before the service."""

    def __init__(self, kafka: KafkaSettings, event_types: Sequence[str]) -> None:
        self._kafka = kafka
        self._topics = [kafka.topic(name) for name in event_types]
        self._event_types = event_types
        self._events: list[Envelope[Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        specs = [spec for spec in catalog.TOPICS if spec.name in self._event_types]
        await ensure_topics(self._kafka, new_topics(specs, prefix=self._kafka.topic_prefix))
        self._thread = threading.Thread(target=self._consume, name="event-tap", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _consume(self) -> None:
        consumer = Consumer(
            {
                **self._kafka.client_config(),
                "group.id": f"flywheel.test-tap.{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe(self._topics)
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.1)
                if message is None or message.error() is not None:
                    continue
                try:
                    envelope = decode(message.value() or b"")
                except InvalidEvent:
                    continue
                with self._lock:
                    self._events.append(envelope)
        finally:
            consumer.close()

    def of(self, event_type: str, run_id: UUID | None = None) -> list[Envelope[Any]]:
        with self._lock:
            return [
                e
                for e in self._events
                if e.event_type == event_type and (run_id is None or e.run_id == run_id)
            ]

    def of_run(self, run_id: UUID) -> list[Envelope[Any]]:
        """Every tapped event of the run, in the order the tap read them."""
        with self._lock:
            return [e for e in self._events if e.run_id == run_id]

    async def wait_for(
        self,
        event_type: str,
        run_id: UUID | None = None,
        *,
        count: int = 1,
        timeout_s: float = 60.0,
        where: Callable[[Envelope[Any]], bool] = lambda _: True,
    ) -> list[Envelope[Any]]:
        """The first `count` matching events (distinct ids); AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            unique = {e.event_id: e for e in self.of(event_type, run_id) if where(e)}
            if len(unique) >= count:
                return list(unique.values())
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(unique)} of {count} {event_type} for run {run_id} in {timeout_s}s"
                )
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


TAPPED = ("nim.up", "nim.failed", "nim.down", "run.completed", "run.failed")
"""What nim-manager publishes."""


class StandIns:
    """The evaluator and the customizer: every nim.up seen on `tap` gets its base and ICL
    evaluations and, with customization enabled, a successful customization and its evaluation.
    Scores follow `score(model)`."""

    def __init__(
        self,
        tap: EventTap,
        kafka: KafkaSettings,
        score: Callable[[str], float] = lambda _: 0.9,
    ) -> None:
        self._tap = tap
        self._publisher = Publisher(kafka, client_id=f"test-stand-ins-{uuid.uuid4().hex[:6]}")
        self._score = score
        self._answered: set[UUID] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._publisher.start()
        self._task = asyncio.create_task(self._answer_forever())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._publisher.close()

    async def _answer_forever(self) -> None:
        while True:
            for up in self._tap.of("nim.up"):
                if up.event_id not in self._answered:
                    await self._publisher.publish_many(self._answers(up))
                    self._answered.add(up.event_id)
            await asyncio.sleep(0.05)

    def _answers(self, up: Envelope[Any]) -> list[Envelope[Any]]:
        payload: NimUp = up.payload
        model = payload.candidate.model_name
        types = [EvalType.BASE, EvalType.ICL]
        answers: list[Envelope[Any]] = []
        if payload.candidate.customization_enabled:
            answers.append(self._event(up, customization(payload), "customizer", "customization"))
            types.append(EvalType.CUSTOMIZED)
        score = self._score(model)
        answers += [
            self._event(up, evaluation(model, t, score=score, tokens=540), "evaluator", t.value)
            for t in types
        ]
        return answers

    @staticmethod
    def _event(
        cause: Envelope[Any], payload: Any, producer: str, discriminator: str
    ) -> Envelope[Any]:
        return new_event(
            payload,
            producer=producer,
            run_id=cause.run_id,
            cause=cause,
            discriminator=discriminator,
        )
