"""Helpers for services' integration tests against the real Kafka (no fakes here)."""

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self
from uuid import UUID

import httpx
import structlog
from confluent_kafka import Consumer, Message

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime.emitting import FROM_CAUSE, RunId, event_of
from flywheel_contracts.runtime.kit import ServiceKit
from flywheel_contracts.runtime.logging import configure_logging


@asynccontextmanager
async def running(kit: ServiceKit) -> AsyncIterator[ServiceKit]:
    """`kit` started for the duration of the block, then stopped as on SIGTERM."""
    await kit.start()
    try:
        yield kit
    finally:
        await kit.stop()


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 20.0
) -> None:
    """Wait until `condition()` is true; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.05)


def read_topic(
    bootstrap_servers: str, topic: str, count: int, timeout_s: float = 20.0
) -> list[Message]:
    """Up to `count` messages of `topic` from its beginning, read by a throwaway group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"flywheel.test-reader.{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


def wait_for_status(
    url: str, status: int, timeout_s: float, every_s: float = 0.1
) -> httpx.Response:
    """GET `url` until it answers `status` and return that answer; AssertionError with the last
    answer after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            response = httpx.get(url, timeout=3)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == status:
                return response
            last = f"{response.status_code} {response.text}"
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer {status} within {timeout_s}s: {last}")
        time.sleep(every_s)


@dataclass(frozen=True)
class StallSeen:
    """How a service's health probes answered once its consumer stalled (`observe_stall`)."""

    unready_after_s: float
    """From the stall to the first 503 of `/health/ready`."""
    ready_answer: dict[str, Any]
    live_status_when_unready: int
    dead_after_s: float
    """From the stall to the first 503 of `/health/live`."""
    live_answer: dict[str, Any]

    def assert_within(
        self,
        service: str,
        *,
        ready_after_s: float,
        live_after_s: float,
        statistics_s: float,
        margin_s: float,
    ) -> None:
        """Readiness failed on the consumer check alone, then liveness, each at its limit give
        or take one statistics interval (plus `margin_s` of polling late); liveness still
        answered 200 when readiness first failed."""
        checks = dict(self.ready_answer["checks"])
        consumer = checks.pop("consumer")
        assert consumer["ok"] is False
        assert consumer["error"].startswith("ConsumerStalled: the consumer has not polled for ")
        assert f"(readiness allows {ready_after_s:g}s)" in consumer["error"]
        assert all(check["ok"] for check in checks.values()), self.ready_answer
        assert (
            ready_after_s - statistics_s - 0.5
            <= self.unready_after_s
            <= ready_after_s + statistics_s + margin_s
        ), self.unready_after_s
        assert self.live_status_when_unready == 200
        assert self.live_answer["status"] == "stalled"
        assert self.live_answer["service"] == service
        assert self.live_answer["reason"].startswith("the consumer has not polled for ")
        assert f"(liveness allows {live_after_s:g}s)" in self.live_answer["reason"]
        assert (
            live_after_s - statistics_s - 0.5
            <= self.dead_after_s
            <= live_after_s + statistics_s + margin_s
        ), self.dead_after_s


def observe_stall(url: str, stalled_at: float, timeout_s: float = 60.0) -> StallSeen:
    """Watch the service at `url`, whose consumer stopped polling at `stalled_at` (monotonic),
    until `/health/ready` and then `/health/live` answer 503."""
    unready = wait_for_status(f"{url}/health/ready", 503, timeout_s)
    unready_after_s = time.monotonic() - stalled_at
    live_status = httpx.get(f"{url}/health/live", timeout=3).status_code
    dead = wait_for_status(f"{url}/health/live", 503, timeout_s)
    return StallSeen(
        unready_after_s=unready_after_s,
        ready_answer=unready.json(),
        live_status_when_unready=live_status,
        dead_after_s=time.monotonic() - stalled_at,
        live_answer=dead.json(),
    )


class ManualMonotonic:
    """A monotonic clock (seconds, as `time.monotonic`) that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ManualClock:
    """A UTC wall clock (a `runtime.clock.Clock`) that moves only when a test says so."""

    def __init__(self, start: datetime = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceProcess:
    """A service run as `python -m <module>`, configured by `<env_prefix>*` variables, for tests
    that crash and restart it. Its output goes to `log_path`; it listens on `port` (default a
    free one), set as `<env_prefix><port_setting>`."""

    def __init__(
        self,
        module: str,
        env_prefix: str,
        env: Mapping[str, str],
        log_path: Path,
        *,
        port: int | None = None,
        port_setting: str = "HTTP_PORT",
    ) -> None:
        self.module = module
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._env = {
            **os.environ,
            f"{env_prefix}{port_setting}": str(self.port),
            f"{env_prefix}LOG_FORMAT": "console",
            **env,
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, ready_within_s: float = 90.0) -> None:
        """Start and return once `/health/ready` answers 200. A process that exits while
        starting (a shared Kafka briefly down) is started again, as a supervisor would."""
        deadline = time.monotonic() + ready_within_s
        while time.monotonic() < deadline:
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", self.module],
                    env=self._env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            while self.alive and time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/health/ready", timeout=3).status_code == 200:
                        return
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"{self.module} did not get ready; see {self.log_path}")

    def freeze(self) -> None:
        """SIGSTOP: the process holds its connections and partitions but does nothing, as a
        process stuck in a GC pause or a frozen VM would."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after `freeze`."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (a graceful stop: in-flight work finishes, service.stopping is published)
        and wait; the exit code."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._process.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """What a service's logging writes, configured as in production (JSON lines, every level),
    into a buffer; the previous configuration is restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("json", "DEBUG")
    output = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(output)
    try:
        yield output
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


class FakeLease:
    """A `Lease` a test drives: `leading` says whether this instance holds it. Taking it again
    after losing it starts a new tenure (a new fencing token), as a real lease does."""

    def __init__(self, holder_id: str = "test-instance", leading: bool = True) -> None:
        self.holder_id = holder_id
        self._leading = leading
        self._token = 1
        self.tenure: int | None = self._token if leading else None
        self.releases = 0

    @property
    def leading(self) -> bool:
        return self._leading

    @leading.setter
    def leading(self, leading: bool) -> None:
        if leading and not self._leading:
            self._token += 1
        self._leading = leading

    async def hold(self) -> int | None:
        self.tenure = self._token if self._leading else None
        return self.tenure

    async def release(self) -> None:
        self.releases += 1
        self.leading = False

    async def holder(self) -> str | None:
        return self.holder_id if self._leading else None


class RecordedEvents:
    """The kit's `NewEvent`, `Emit` and `Publish` for unit tests: events built as `producer`'s
    exactly as the kit builds them, and what was published, in order. With `down` set,
    publishing fails as an unreachable Kafka would."""

    def __init__(self, producer: str) -> None:
        self.producer = producer
        self.published: list[Envelope[Any]] = []
        self.down = False

    def new_event(
        self,
        payload: EventPayload,
        *,
        cause: Envelope[Any] | None = None,
        run_id: RunId = FROM_CAUSE,
        discriminator: str = "",
    ) -> Envelope[Any]:
        return event_of(
            self.producer, payload, cause=cause, run_id=run_id, discriminator=discriminator
        )

    async def emit(
        self,
        payload: EventPayload,
        *,
        cause: Envelope[Any] | None = None,
        run_id: RunId = FROM_CAUSE,
        discriminator: str = "",
    ) -> Envelope[Any]:
        event = self.new_event(payload, cause=cause, run_id=run_id, discriminator=discriminator)
        await self.publish(event)
        return event

    async def publish(self, envelope: Envelope[Any], /) -> None:
        if self.down:
            raise ConnectionError("Kafka unreachable")
        self.published.append(envelope)

    def of(self, event_type: str, run_id: UUID | None = None) -> list[Envelope[Any]]:
        """The published events of `event_type` (of `run_id` only, when given)."""
        return [
            e
            for e in self.published
            if e.event_type == event_type and (run_id is None or e.run_id == run_id)
        ]
