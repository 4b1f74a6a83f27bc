"""The six Flywheel services as child processes (`python -m flywheel_<name>`) on the local stack,
for the end-to-end suite and the demo.

One `FlywheelSetup` names everything the services share (servers, one topic prefix, one
Elasticsearch index) and gives each service its own Mongo database, HTTP port and consumer
group, so several flywheels can run side by side on one stack without seeing each other.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_contracts.runtime.testing import ServiceProcess
from flywheel_localstack import process as daemons

SERVICES: tuple[str, ...] = (
    "ingest",
    "datasets",
    "nim-manager",
    "evaluator",
    "customizer",
    "janitor",
)
_NEEDS_NMP = frozenset({"datasets", "nim-manager", "evaluator", "customizer", "janitor"})
_NEEDS_ELASTICSEARCH = frozenset({"ingest", "datasets"})
# Services whose consumer group is named per flywheel; the others' default group is under the
# flywheel's topic prefix already. Ingest needs its own: it may read the shipper's unprefixed
# `logs.raw`, where a shared group would split the partitions between flywheels.
_NAMED_GROUPS = frozenset({"ingest", "customizer", "janitor"})
_STOP_TIMEOUT_S = 30.0


def env_prefix(service: str) -> str:
    """`nim-manager` -> `FLYWHEEL_NIM_MANAGER_`."""
    return f"FLYWHEEL_{service.upper().replace('-', '_')}_"


def module(service: str) -> str:
    return f"flywheel_{service.replace('-', '_')}"


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    mongo_url: str
    elasticsearch_url: str
    nmp_url: str
    # How clients log in to Kafka, as `KafkaSettings` fields (empty: plaintext).
    kafka_security: Mapping[str, str] = field(default_factory=dict)

    def kafka(self, topic_prefix: str = "") -> KafkaSettings:
        """Client settings for this Kafka, under `topic_prefix`."""
        return KafkaSettings.model_validate(
            {
                "bootstrap_servers": self.kafka_bootstrap,
                "topic_prefix": topic_prefix,
                **self.kafka_security,
            }
        )


@dataclass(frozen=True)
class FlywheelSetup:
    """One flywheel's share of the servers; its `name` makes its topics, index, databases and
    consumer groups its own."""

    servers: Servers
    name: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:10]}")
    gpu_budget: int = 4
    # Quick polling: tests and the demo should not wait on idle loops.
    fast: bool = True
    # Ingest reads its source topic under its prefix, while the log shipper writes the plain
    # `logs.raw`. Nothing in the flywheel consumes what ingest publishes (logs.rejected,
    # records.ingested), so ingest can run without the prefix and read what the shipper ships,
    # through a consumer group of its own (see `start_new_group_at_end`); its documents go to
    # this flywheel's index all the same. False: ingest is prefixed too, and the lines must be
    # produced to the prefixed `logs.raw`.
    ingest_reads_shipper: bool = True

    @property
    def topic_prefix(self) -> str:
        return f"{self.name}."

    @property
    def index(self) -> str:
        return f"flywheel-{self.name}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def raw_topic(self) -> str:
        """The topic ingest reads log lines from."""
        return "logs.raw" if self.ingest_reads_shipper else self.topic("logs.raw")

    def group(self, service: str) -> str:
        return f"flywheel.{service}.{self.name}"

    def database(self, service: str) -> str:
        return f"fw_{self.name}_{service}".replace("-", "_")

    def env(self, service: str, **extra: object) -> dict[str, str]:
        """The `FLYWHEEL_<SERVICE>_*` variables of `service` in this flywheel; `extra` sets any
        other setting by its field name (nested with `__`, e.g. `jobs__poll_interval_s=1`)."""
        s = self.servers
        values: dict[str, object] = {
            "kafka__bootstrap_servers": s.kafka_bootstrap,
            "kafka__topic_prefix": self.topic_prefix,
            **{f"kafka__{name}": value for name, value in s.kafka_security.items()},
            "mongo__url": s.mongo_url,
            "mongo__database": self.database(service),
            "log_format": "console",
        }
        if service in _NEEDS_NMP:
            values |= {
                "nmp__nemo_base_url": s.nmp_url,
                "nmp__nim_base_url": s.nmp_url,
                "nmp__datastore_base_url": s.nmp_url,
            }
        if service in _NEEDS_ELASTICSEARCH:
            values |= {
                "elasticsearch__url": s.elasticsearch_url,
                "elasticsearch__index": self.index,
            }
        if service in _NAMED_GROUPS:
            values["group_id"] = self.group(service)
        if service == "nim-manager":
            values["gpu_budget"] = self.gpu_budget
        if service == "ingest" and self.ingest_reads_shipper:
            values["kafka__topic_prefix"] = ""
        if self.fast:
            values |= _FAST.get(service, {})
        values |= extra
        prefix = env_prefix(service)
        return {f"{prefix}{name.upper()}": str(value) for name, value in values.items()}


# Poll intervals of the loops, shortened so a run spends its time working, not sleeping.
_FAST: dict[str, dict[str, object]] = {
    "datasets": {"reconcile_interval_s": 0.2},
    "nim-manager": {"tick_interval_s": 0.1},
    "evaluator": {"worker__poll_interval_s": 0.2},
    "customizer": {"jobs__poll_interval_s": 0.2},
    "janitor": {"reclaim__poll_interval_s": 0.2},
}


def answers_ready(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    return False


class Flywheel:
    """The six services of `setup` as child processes, started together (each restarted if it
    exits while starting) and stopped (SIGTERM) together.

    `extra` sets further settings per service (`{"nim-manager": {"gpu_budget": 1}}`).
    """

    def __init__(
        self,
        setup: FlywheelSetup,
        log_dir: Path,
        *,
        services: Sequence[str] = SERVICES,
        extra: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        self.setup = setup
        log_dir.mkdir(parents=True, exist_ok=True)
        self.processes = {
            name: ServiceProcess(
                module(name),
                env_prefix(name),
                setup.env(name, **(extra or {}).get(name, {})),
                log_dir / f"{name}.log",
            )
            for name in services
        }

    def __getitem__(self, service: str) -> ServiceProcess:
        return self.processes[service]

    def start(self, ready_within_s: float = 120.0) -> None:
        """Start every service and return once all answer `/health/ready`. They start side by
        side: one after the other would add up six interpreter start-ups."""
        with ThreadPoolExecutor(len(self.processes)) as pool:
            starts = [pool.submit(p.start, ready_within_s) for p in self.processes.values()]
        failures = [str(f.exception()) for f in starts if f.exception() is not None]
        if failures:
            self.stop()
            raise AssertionError("; ".join(failures))

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every service and wait for it; their exit codes."""
        with ThreadPoolExecutor(len(self.processes)) as pool:
            codes = {name: pool.submit(p.stop) for name, p in self.processes.items()}
        return {name: code.result() for name, code in codes.items()}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# The ports the READMEs document; the demo's services listen there, so `curl` and the docs agree.
DEFAULT_PORTS: dict[str, int] = {
    "ingest": 8001,
    "datasets": 8102,
    "nim-manager": 8103,
    "evaluator": 8104,
    "customizer": 8105,
    "janitor": 8106,
}


class Daemons:
    """The services of `setup` as daemons that outlive the caller (the demo leaves them running
    for its next invocation): detached sessions, pid files in `run_dir`, default ports."""

    def __init__(self, setup: FlywheelSetup, run_dir: Path, log_dir: Path) -> None:
        self.setup = setup
        self.run_dir = run_dir
        self.log_dir = log_dir

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{DEFAULT_PORTS[service]}"

    def _pid_path(self, service: str) -> Path:
        return self.run_dir / f"{self.setup.name}-{service}.pid"

    def running(self, service: str) -> bool:
        return daemons.alive(daemons.PidRecord.load(self._pid_path(service)))

    def ensure_running(self, ready_timeout_s: float = 120.0) -> list[str]:
        """Start the services that are not running; return once all are ready. The started."""
        started = [name for name in SERVICES if not self.running(name)]
        for name in started:
            port = DEFAULT_PORTS[name]
            if daemons.port_in_use(port):
                raise RuntimeError(f"{name}: port {port} is taken by another process")
            env = {
                **self.setup.env(name, http_port=port),
                "PYTHONUNBUFFERED": "1",
            }
            daemons.spawn(
                [sys.executable, "-m", module(name)],
                log_path=self.log_dir / f"{self.setup.name}-{name}.log",
                pid_path=self._pid_path(name),
                env=env,
            )
        deadline = time.monotonic() + ready_timeout_s
        waiting = set(SERVICES)
        while waiting:
            waiting = {name for name in waiting if not answers_ready(self.url(name))}
            dead = sorted(name for name in waiting if not self.running(name))
            if dead or (waiting and time.monotonic() > deadline):
                logs = [str(self.log_dir / f"{self.setup.name}-{n}.log") for n in dead or waiting]
                raise RuntimeError(f"not ready: {sorted(dead or waiting)}; see {logs}")
            time.sleep(0.3)
        return started

    def stop(self) -> list[str]:
        """SIGTERM the running services (SIGKILL after 30 s); the stopped."""
        stopped = []
        for name in SERVICES:
            record = daemons.PidRecord.load(self._pid_path(name))
            if daemons.alive(record):
                assert record is not None
                daemons.terminate(record, _STOP_TIMEOUT_S)
                stopped.append(name)
            self._pid_path(name).unlink(missing_ok=True)
        return stopped


def start_new_group_at_end(
    kafka: KafkaSettings, group: str, topic: str, retry_for_s: float = 60.0
) -> bool:
    """Commit the end of `topic` for `group` unless the group has committed offsets already,
    so a new ingest skips the history other writers left on a shared `logs.raw` while a
    restarted one resumes where it stopped. True if the group was new.

    Retriable broker errors are retried for `retry_for_s`: a fresh or just restarted Kafka
    answers NOT_COORDINATOR until its group coordinator has loaded."""
    deadline = time.monotonic() + retry_for_s
    while True:
        try:
            return _start_new_group_at_end(kafka, group, topic)
        except KafkaException as exc:
            error = exc.args[0]
            # librdkafka does not flag a coordinator that is still loading as retriable when it
            # answers a `committed` call.
            retriable = error.retriable() or error.code() in _COORDINATOR_NOT_READY
            if not retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


_COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def _start_new_group_at_end(kafka: KafkaSettings, group: str, topic: str) -> bool:
    consumer = Consumer({**kafka.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assigned = [TopicPartition(topic, p) for p in partitions]
        if any(tp.offset >= 0 for tp in consumer.committed(assigned, timeout=10)):
            return False
        ends = [
            TopicPartition(topic, tp.partition, consumer.get_watermark_offsets(tp, timeout=10)[1])
            for tp in assigned
        ]
        consumer.commit(offsets=ends, asynchronous=False)
        return True
    finally:
        consumer.close()


def ship(folder: Path, staged: Path) -> Path:
    """Move a complete log file into the shipper's folder as *.jsonl: the shipper watches that
    pattern, so the whole file appears at once and no half-written line is read. `staged` must
    not end in .jsonl; it may be elsewhere (it is moved next to its target first, since a rename
    across file systems is a copy)."""
    if staged.parent.resolve() != folder.resolve():
        staged = Path(shutil.move(staged, folder / staged.name))
    return staged.rename(folder / f"{staged.stem}.jsonl")


def indexed(elasticsearch_url: str, index: str, client_id: str) -> int:
    """Records of `client_id` searchable in `index`; 0 while the index does not exist or
    Elasticsearch sheds load (429: a tripped circuit breaker recovers once its heap is freed)."""
    response = httpx.post(
        f"{elasticsearch_url}/{index}/_count",
        json={"query": {"term": {"client_id": client_id}}},
        timeout=30,
    )
    if response.status_code in (404, 429, 503):
        return 0
    response.raise_for_status()
    count: int = response.json()["count"]
    return count


def wait_indexed(
    elasticsearch_url: str, index: str, client_id: str, expected: int, timeout_s: float
) -> float:
    """Wait until `expected` records of `client_id` are searchable; the seconds it took."""
    started = time.monotonic()
    while (found := indexed(elasticsearch_url, index, client_id)) < expected:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{found} of {expected} records indexed in {timeout_s}s")
        time.sleep(0.5)
    return time.monotonic() - started
