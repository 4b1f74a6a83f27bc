"""The stack's servers: how each is installed, configured, started and checked for real use."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import sys
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from flywheel_localstack.config import DEPLOY_LOCAL_DIR, TEMPLATES_DIR, StackSettings
from flywheel_localstack.installers import (
    InstallError,
    ensure_debian_packages,
    maven_classpath,
)

RAW_LOGS_TOPIC = "logs.raw"
_QUIET = logging.getLogger("flywheel_localstack.kafka_probe")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


class Component(ABC):
    """One server of the stack. Subclasses say how to install, configure, start and probe it."""

    name: ClassVar[str]
    depends_on: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings

    @property
    @abstractmethod
    def ports(self) -> tuple[int, ...]: ...

    def install(self) -> None:
        """Fetch or build what the server needs into the cache; idempotent."""

    def prepare(self) -> None:
        """Write configuration and initialise storage before a start."""

    @abstractmethod
    def command(self) -> list[str]: ...

    def env(self) -> dict[str, str]:
        return {}

    @abstractmethod
    def probe(self) -> Health:
        """Is the server really usable (not merely listening)?"""

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def log_path(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    def _render(self, template: str, target: Path, **values: object) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((TEMPLATES_DIR / template).read_text().format(**values))
        return target


def _java(heap: str, classpath: Path, *args: str, min_heap: str | None = None) -> list[str]:
    return [
        "java",
        f"-Xms{min_heap or heap}",
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        "-cp",
        f"{classpath}/*",
        *args,
    ]


class Kafka(Component):
    name = "kafka"
    version = "4.3.1"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.kafka_port, self.settings.kafka_controller_port)

    @property
    def _lib(self) -> Path:
        return self.settings.cache_dir / f"kafka-{self.version}" / "lib"

    def install(self) -> None:
        maven_classpath(DEPLOY_LOCAL_DIR / "maven" / "kafka" / "pom.xml", self._lib)

    def prepare(self) -> None:
        s = self.settings
        props = self._render(
            "kafka-server.properties",
            self.data_dir / "server.properties",
            kafka_port=s.kafka_port,
            kafka_controller_port=s.kafka_controller_port,
            data_dir=self.data_dir,
        )
        self._render("kafka-log4j2.xml", self.data_dir / "log4j2.xml")
        if (self.data_dir / "log" / "meta.properties").exists():
            return
        # Storage is formatted once; re-formatting with a new cluster id would refuse old data.
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        result = subprocess.run(
            _java(
                "256m",
                self._lib,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "--ignore-formatted",
                "-t",
                id_file.read_text().strip(),
                "-c",
                str(props),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise InstallError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        return _java(
            self.settings.kafka_heap,
            self._lib,
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.settings.logs_dir}",
            "kafka.Kafka",
            str(self.data_dir / "server.properties"),
            min_heap="256m",
        )

    def probe(self) -> Health:
        admin = AdminClient(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "socket.connection.setup.timeout.ms": 1000,
            },
            # While the broker starts, refused connections are expected: keep them off stderr.
            logger=_QUIET,
        )
        try:
            topics = admin.list_topics(timeout=2).topics
        except Exception as exc:
            return Health(False, f"metadata request failed: {exc}")
        # After a restart the broker answers metadata before it leads its partitions again;
        # until then clients get NOT_LEADER errors, so ask every partition for its end offset.
        partitions = [
            TopicPartition(name, p) for name, topic in topics.items() for p in topic.partitions
        ]
        if partitions:
            latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # untyped upstream
            futures = admin.list_offsets({tp: latest for tp in partitions}, request_timeout=2)
            try:
                for future in futures.values():
                    future.result(timeout=3)
            except Exception as exc:
                return Health(False, f"partitions not served yet: {exc}")
        return Health(True, f"{len(topics)} topics")


class Elasticsearch(Component):
    name = "elasticsearch"
    version = "7.10.2"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.elasticsearch_port, self.settings.elasticsearch_transport_port)

    @property
    def _lib(self) -> Path:
        return self.settings.cache_dir / f"elasticsearch-{self.version}" / "lib"

    def install(self) -> None:
        maven_classpath(DEPLOY_LOCAL_DIR / "maven" / "elasticsearch" / "pom.xml", self._lib)

    def prepare(self) -> None:
        self._render(
            "elasticsearch.yml",
            self.data_dir / "node_1" / "config" / "elasticsearch.yml",
            transport_port=self.settings.elasticsearch_transport_port,
        )

    def command(self) -> list[str]:
        s = self.settings
        return _java(
            s.elasticsearch_heap,
            self._lib,
            "-Des.distribution.flavor=default",  # the 7.14+ Python client checks it
            "-Dlog4j2.formatMsgNoLookups=true",
            str(DEPLOY_LOCAL_DIR / "elasticsearch" / "ElasticsearchLauncher.java"),
            str(self.data_dir),
            str(s.elasticsearch_port),
            "flywheel",
        )

    def probe(self) -> Health:
        try:
            response = httpx.get(f"{self.settings.elasticsearch_url}/_cluster/health", timeout=2)
            status = response.json().get("status")
        except (httpx.HTTPError, ValueError) as exc:
            return Health(False, f"cluster health failed: {exc}")
        return Health(status in ("green", "yellow"), f"cluster {status}")


class Mongo(Component):
    """MongoDB wire protocol on an H2 file (mongo-java-server): FerretDB is not served here."""

    name = "mongo"
    version = "1.47.0"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.mongo_port,)

    @property
    def _lib(self) -> Path:
        return self.settings.cache_dir / f"mongo-java-server-{self.version}" / "lib"

    def install(self) -> None:
        maven_classpath(DEPLOY_LOCAL_DIR / "maven" / "mongo" / "pom.xml", self._lib)

    def command(self) -> list[str]:
        return _java(
            self.settings.mongo_heap,
            self._lib,
            str(DEPLOY_LOCAL_DIR / "mongo" / "MongoLauncher.java"),
            "127.0.0.1",
            str(self.settings.mongo_port),
            str(self.data_dir / "flywheel.mv"),
            min_heap="64m",
        )

    def probe(self) -> Health:
        client: MongoClient[dict[str, object]] = MongoClient(
            self.settings.mongo_url, serverSelectionTimeoutMS=1500, connectTimeoutMS=1000
        )
        try:
            client.admin.command("ping")
            version = client.server_info().get("version")
        except PyMongoError as exc:
            return Health(False, f"ping failed: {exc}")
        finally:
            client.close()
        return Health(True, f"wire-compatible MongoDB {version}")


class Rsyslog(Component):
    name = "rsyslog"
    depends_on = ("kafka",)
    omkafka = "/usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so"

    @property
    def ports(self) -> tuple[int, ...]:
        return ()

    @property
    def _conf(self) -> Path:
        return self.data_dir / "rsyslog.conf"

    def install(self) -> None:
        ensure_debian_packages(
            {"rsyslogd": "rsyslog", "kcat": "kcat"}, {self.omkafka: "rsyslog-kafka"}
        )

    def prepare(self) -> None:
        work = self.data_dir / "work"
        work.mkdir(parents=True, exist_ok=True)
        self.settings.shipper_folder.mkdir(parents=True, exist_ok=True)
        self._render(
            "rsyslog.conf",
            self._conf,
            shipper_dir=self.settings.shipper_folder.resolve(),
            topic=RAW_LOGS_TOPIC,
            max_line_bytes="1m",
            work_dir=work.resolve(),
            persist_every_lines=200,
            kafka_port=self.settings.kafka_port,
        )
        check = subprocess.run(
            ["rsyslogd", "-N1", "-f", str(self._conf)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise InstallError(f"rsyslog refused its configuration:\n{check.stderr}")

    def command(self) -> list[str]:
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        return [rsyslogd, "-n", "-f", str(self._conf), "-i", str(self.data_dir / "rsyslogd.pid")]

    def probe(self) -> Health:
        # rsyslog has no health endpoint; the supervisor has checked that the process is alive and
        # that Kafka is usable, which is all omkafka needs to deliver.
        return Health(True, f"shipping {self.settings.shipper_folder}/*.jsonl -> {RAW_LOGS_TOPIC}")


class NmpEmulator(Component):
    name = "nmp-emulator"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.nmp_port,)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "flywheel_nmp_emulator"]

    def env(self) -> dict[str, str]:
        return {
            "NMP_EMULATOR_HOST": "127.0.0.1",
            "NMP_EMULATOR_PORT": str(self.settings.nmp_port),
            "NMP_EMULATOR_STATE_FILE": str(self.data_dir / "state.json"),
            "NMP_EMULATOR_GPUS": str(self.settings.nmp_gpus),
        }

    def probe(self) -> Health:
        try:
            response = httpx.get(f"{self.settings.nmp_url}/health/ready", timeout=2)
        except httpx.HTTPError as exc:
            return Health(False, f"readiness failed: {exc}")
        return Health(response.status_code == 200, f"HTTP {response.status_code}")


ALL_COMPONENTS: tuple[type[Component], ...] = (Mongo, Elasticsearch, Kafka, NmpEmulator, Rsyslog)
