"""A NeMo Relay subscriber that turns each LLM call into a Flywheel log record and ships it.

Relay calls subscribers on its own dispatcher thread, after the agent's call returned; the
subscriber only pairs the call's two events there and queues the record. A thread of its own
ships the queue, in batches, to Flywheel's intake (`POST {url}/v1/logs`, NDJSON) or appends it to
a `*.jsonl` file in the log shipper's folder. A slow or absent Flywheel never reaches the agent:
deliveries are retried with backoff on connection errors and 5xx answers for up to
`give_up_after_s`, and past `max_queue` waiting records new ones are dropped (and counted).

Settings come from arguments or `FLYWHEEL_RELAY_*` environment variables (`from_env`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

from flywheel_relay.records import (
    Call,
    Pairing,
    Problem,
    RecordError,
    identifier_ok,
    to_record,
)

logger = logging.getLogger("flywheel_relay")

ENV_PREFIX = "FLYWHEEL_RELAY_"
_RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class SubscriberSettings:
    """Where records go and how; exactly one of `url` and `directory`."""

    url: str | None = None
    """Flywheel's intake (ingest), e.g. `http://flywheel-ingest:8001`."""
    directory: Path | None = None
    """Or the log shipper's folder: records are appended to `<directory>/<filename>`."""
    token: str | None = None
    """The intake's token, sent as `Authorization: Bearer <token>`."""
    workload_id: str | None = None
    """Every record's workload; default: the name of the call's enclosing agent."""
    client_id: str | None = None
    """Every record's client; default: `flywheel.client_id` metadata of the call or its scopes."""
    source: str | None = None
    """Keys this process's records on Flywheel's source topic, keeping them in order."""
    filename: str | None = None
    """File name in `directory`; default `nemo-relay-<host>-<pid>.jsonl` (one writer a file)."""
    batch_size: int = 100
    linger_s: float = 0.5
    """How long a record may wait for a batch to fill."""
    max_queue: int = 10_000
    timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    give_up_after_s: float = 300.0
    """A batch still undelivered after this long is dropped (and counted as failed)."""

    def __post_init__(self) -> None:
        if (self.url is None) == (self.directory is None):
            raise ValueError(
                f"set exactly one of url ({ENV_PREFIX}URL) and directory ({ENV_PREFIX}DIRECTORY)"
            )
        for name in ("workload_id", "client_id"):
            value = getattr(self, name)
            if value is not None and not identifier_ok(value):
                raise ValueError(
                    f"{name} must be 1-256 characters among letters, digits and _.:@/+-, "
                    f"got {value!r}"
                )
        if self.batch_size < 1 or self.max_queue < 1:
            raise ValueError("batch_size and max_queue must be at least 1")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> SubscriberSettings:
        """Settings from `FLYWHEEL_RELAY_<FIELD>` variables (e.g. `FLYWHEEL_RELAY_URL`,
        `FLYWHEEL_RELAY_TOKEN`, `FLYWHEEL_RELAY_BATCH_SIZE`); arguments given here win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = env.get(ENV_PREFIX + spec.name.upper())
            if raw is None or raw == "":
                continue
            default = spec.default
            if spec.name == "directory":
                values[spec.name] = Path(raw)
            elif isinstance(default, bool):
                values[spec.name] = raw.lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[spec.name] = int(raw)
            elif isinstance(default, float):
                values[spec.name] = float(raw)
            else:
                values[spec.name] = raw
        values.update({key: value for key, value in overrides.items() if value is not None})
        if isinstance(values.get("directory"), str):
            values["directory"] = Path(values["directory"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SubscriberStats:
    calls: int = 0
    """LLM calls whose start and end were both seen."""
    records: int = 0
    """Records made of them and queued."""
    shipped: int = 0
    """Records Flywheel's intake acknowledged (or the file took)."""
    dropped: int = 0
    """Records not queued: the queue was full."""
    failed: int = 0
    """Records given up on: the intake refused them, or stayed away too long."""
    skipped: Mapping[str, int] = field(default_factory=dict)
    """Calls that could not become records, by reason (`unpaired_event`, `incomplete_call`,
    ...): failed calls, halves whose other half never came."""

    @property
    def pending(self) -> int:
        return self.records - self.shipped - self.failed


class Retryable(Exception):
    """The destination may take the batch later."""


class Refused(Exception):
    """The destination will not take the batch; sending it again would not help."""


class Sink(Protocol):
    def send(self, lines: Sequence[bytes]) -> None:
        """Deliver the lines or raise Retryable or Refused."""
        ...

    def close(self) -> None: ...


class IntakeSink:
    """`POST {url}/v1/logs`: an NDJSON body of records."""

    def __init__(
        self, settings: SubscriberSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        headers = {"content-type": "application/x-ndjson"}
        if settings.token:
            headers["authorization"] = f"Bearer {settings.token}"
        self._client = httpx.Client(
            base_url=str(settings.url).rstrip("/"),
            headers=headers,
            timeout=settings.timeout_s,
            transport=transport,
        )
        self._params = {"source": settings.source} if settings.source else {}

    def send(self, lines: Sequence[bytes]) -> None:
        try:
            response = self._client.post(
                "/v1/logs", content=b"\n".join(lines) + b"\n", params=self._params
            )
        except httpx.TransportError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        detail = f"HTTP {response.status_code}: {response.text[:300]}"
        if response.status_code >= 500 or response.status_code in _RETRYABLE_STATUS:
            raise Retryable(detail)
        raise Refused(detail)

    def close(self) -> None:
        self._client.close()


class FileSink:
    """Appends records to one `*.jsonl` file, the form the log shipper tails."""

    def __init__(self, settings: SubscriberSettings) -> None:
        directory = Path(str(settings.directory))
        name = settings.filename or f"nemo-relay-{socket.gethostname()}-{os.getpid()}.jsonl"
        if not name.endswith(".jsonl"):
            raise ValueError(f"the shipper reads *.jsonl files; {name!r} would not be read")
        self.path = directory / name

    def send(self, lines: Sequence[bytes]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write of whole lines, so a tailer never reads half a record.
            with self.path.open("ab") as file:
                file.write(b"".join(line + b"\n" for line in lines))
        except OSError as exc:
            raise Retryable(f"{self.path}: {exc}") from exc

    def close(self) -> None:
        pass


class _Event(Protocol):
    def to_dict(self) -> Mapping[str, Any]: ...


class FlywheelSubscriber:
    """Register with `register()`; `flush()` before reading what arrived, `close()` at the end
    (both first let Relay deliver the events it has queued)."""

    def __init__(
        self,
        settings: SubscriberSettings,
        *,
        name: str = "flywheel",
        sink: Sink | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.name = name
        self._sink = sink or (
            IntakeSink(settings) if settings.url is not None else FileSink(settings)
        )
        self._clock = clock
        self._pairing = Pairing()
        self._pairing_lock = threading.Lock()
        self._queue: deque[bytes] = deque()
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._in_flight = 0
        self._urgent = 0
        self._closing = False
        self._close_deadline: float | None = None
        self._counts: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()
        self._registered = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-shipper", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, *, name: str = "flywheel", **overrides: Any) -> FlywheelSubscriber:
        """A subscriber configured by `FLYWHEEL_RELAY_*` variables, arguments winning."""
        return cls(SubscriberSettings.from_env(**overrides), name=name)

    # -- Relay's side ----------------------------------------------------------------------

    def register(self) -> Self:
        """Subscribe to every event of this process; closes at interpreter exit if not before."""
        import nemo_relay

        nemo_relay.subscribers.register(self.name, self.on_event)
        self._registered = True
        atexit.register(self._close_at_exit)
        return self

    def on_event(self, event: _Event | Mapping[str, Any]) -> None:
        """Relay's callback (also takes the event as a dict). Never raises: an exception here
        would only be logged by Relay, and the agent must not notice."""
        try:
            payload = event if isinstance(event, Mapping) else event.to_dict()
            with self._pairing_lock:
                call = self._pairing.add(payload)
            if call is not None:
                self._count("calls")
                self._accept(call)
        except Exception:
            logger.exception("flywheel_relay: an event could not be handled")

    def _accept(self, call: Call) -> None:
        try:
            record = to_record(
                call, workload_id=self.settings.workload_id, client_id=self.settings.client_id
            )
        except RecordError as exc:
            self._skip(exc.problem, exc.message)
            return
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        with self._ready:
            if self._closing or len(self._queue) >= self.settings.max_queue:
                self._counts["dropped"] += 1
                if self._counts["dropped"] == 1 or self._counts["dropped"] % 1000 == 0:
                    logger.warning(
                        "flywheel_relay: closed, or queue full (%d records); %d record(s) "
                        "dropped so far",
                        self.settings.max_queue,
                        self._counts["dropped"],
                    )
                return
            self._queue.append(line)
            self._counts["records"] += 1
            self._ready.notify_all()

    def _skip(self, problem: Problem, message: str) -> None:
        with self._ready:
            self._skipped[problem.value] += 1
        logger.warning("flywheel_relay: not shipped (%s): %s", problem.value, message)

    # -- flushing and closing --------------------------------------------------------------

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Let Relay deliver its queued events, then wait until every record is delivered or
        given up on; False if `timeout_s` passed first. Not from a running event loop: use
        `flush_async` there."""
        import nemo_relay

        nemo_relay.subscribers.flush()
        return self._drain(timeout_s)

    async def flush_async(self, timeout_s: float = 30.0) -> bool:
        import asyncio

        import nemo_relay

        await nemo_relay.subscribers.flush_async()
        return await asyncio.to_thread(self._drain, timeout_s)

    def close(self, timeout_s: float = 30.0) -> SubscriberStats:
        """Deregister, let Relay deliver what it queued, count the calls left half-seen as
        unpaired, ship what is queued (for up to `timeout_s`) and stop."""
        if self._registered:
            import nemo_relay

            nemo_relay.subscribers.deregister(self.name)
            self._registered = False
            atexit.unregister(self._close_at_exit)
            try:
                nemo_relay.subscribers.flush()
            except RuntimeError:
                logger.warning(
                    "flywheel_relay: close() inside a running event loop cannot wait for Relay's "
                    "queued events; await flush_async() first"
                )
        return self._shut(timeout_s)

    async def aclose(self, timeout_s: float = 30.0) -> SubscriberStats:
        await self.flush_async(timeout_s)
        import asyncio

        return await asyncio.to_thread(self.close, timeout_s)

    def _shut(self, timeout_s: float) -> SubscriberStats:
        with self._pairing_lock:
            left = self._pairing.finish()
        for call in left:
            half = "start" if call.start is not None else "end"
            self._skip(Problem.UNPAIRED_EVENT, f"LLM call {call.uuid}: only its {half} was seen")
        with self._ready:
            self._closing = True
            self._close_deadline = self._clock() + timeout_s
            self._ready.notify_all()
        self._thread.join(timeout_s + 1.0)
        self._stop.set()
        self._sink.close()
        return self.stats

    def _close_at_exit(self) -> None:
        try:
            self.close(timeout_s=5.0)
        except Exception:
            logger.exception("flywheel_relay: closing at exit failed")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def stats(self) -> SubscriberStats:
        with self._ready:
            counts, skipped = Counter(self._counts), dict(self._skipped)
        return SubscriberStats(
            calls=counts["calls"],
            records=counts["records"],
            shipped=counts["shipped"],
            dropped=counts["dropped"],
            failed=counts["failed"],
            skipped=skipped,
        )

    def _count(self, name: str, amount: int = 1) -> None:
        with self._ready:
            self._counts[name] += amount

    def _drain(self, timeout_s: float) -> bool:
        with self._ready:
            self._urgent += 1
            self._ready.notify_all()
            try:
                return self._ready.wait_for(
                    lambda: not self._queue and not self._in_flight, timeout_s
                )
            finally:
                self._urgent -= 1

    # -- the shipping thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._deliver(batch)
            with self._ready:
                self._in_flight = 0
                self._ready.notify_all()

    def _next_batch(self) -> list[bytes] | None:
        size = self.settings.batch_size
        with self._ready:
            self._ready.wait_for(lambda: bool(self._queue) or self._closing)
            if not self._queue:
                return None
            # Let a batch fill for up to linger_s, unless someone waits for it.
            deadline = self._clock() + self.settings.linger_s
            while (
                len(self._queue) < size
                and not self._closing
                and not self._urgent
                and (remaining := deadline - self._clock()) > 0
            ):
                self._ready.wait(remaining)
            batch = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
            self._in_flight = len(batch)
            return batch

    def _deliver(self, batch: list[bytes]) -> None:
        started = self._clock()
        delay = self.settings.backoff_initial_s
        while True:
            try:
                self._sink.send(batch)
            except Refused as exc:
                self._give_up(batch, f"refused: {exc}")
                return
            except Retryable as exc:
                now = self._clock()
                deadline = started + self.settings.give_up_after_s
                if self._close_deadline is not None:
                    deadline = min(deadline, self._close_deadline)
                if now + delay > deadline:
                    self._give_up(batch, f"still failing after {now - started:.1f}s: {exc}")
                    return
                logger.info("flywheel_relay: delivery failed (%s); retrying in %.1fs", exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max_s)
            else:
                self._count("shipped", len(batch))
                return

    def _give_up(self, batch: list[bytes], why: str) -> None:
        self._count("failed", len(batch))
        logger.error("flywheel_relay: %d record(s) not delivered, %s", len(batch), why)
