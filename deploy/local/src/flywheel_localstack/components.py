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

from flywheel_contracts.runtime.kafka_access import KafkaAccessRefused, check_access
from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_localstack.config import DEPLOY_LOCAL_DIR, TEMPLATES_DIR, StackSettings
from flywheel_localstack.installers import (
    InstallError,
    ensure_debian_packages,
    maven_classpath,
)
from flywheel_localstack.kafka_security import (
    PLAINTEXT_LISTENERS,
    SHIPPER_MECHANISM,
    SHIPPER_USER,
)
from flywheel_localstack.real_model import emulator_env, install
from flywheel_localstack.real_model.trainer import install_trainer

RAW_LOGS_TOPIC = "logs.raw"


def _shipper_setting(field: str) -> str:
    # The shipper's login is the stack's own: only its password can be set (to rotate it).
    if field == "sasl_password":
        return "FLYWHEEL_STACK_KAFKA_SHIPPER_PASSWORD"
    return f"the stack's shipper {field} (fixed)"


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
        s = self.settings
        mtls = (s.kafka_mtls_port,) if s.kafka_secured else ()
        return (s.kafka_port, *mtls, s.kafka_controller_port)

    @property
    def data_dir(self) -> Path:
        return self.settings.kafka_data_dir

    @property
    def _lib(self) -> Path:
        return self.settings.cache_dir / f"kafka-{self.version}" / "lib"

    def install(self) -> None:
        maven_classpath(DEPLOY_LOCAL_DIR / "maven" / "kafka" / "pom.xml", self._lib)

    def prepare(self) -> None:
        s = self.settings
        credentials = s.kafka_secrets()
        listeners = (
            credentials.broker_properties(s.kafka_port, s.kafka_mtls_port, s.kafka_controller_port)
            if credentials
            else PLAINTEXT_LISTENERS.format(
                port=s.kafka_port, controller_port=s.kafka_controller_port
            )
        )
        props = self._render(
            "kafka-server.properties",
            self.data_dir / "server.properties",
            kafka_controller_port=s.kafka_controller_port,
            listeners=listeners,
            data_dir=self.data_dir,
        )
        props.chmod(0o600)  # holds the shipper's password in secured mode
        self._render("kafka-log4j2.xml", self.data_dir / "log4j2.xml")
        if (self.data_dir / "log" / "meta.properties").exists():
            return
        # Storage is formatted once; re-formatting with a new cluster id would refuse old data.
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(_cluster_id())
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
                *(credentials.format_arguments() if credentials else ()),
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
                **self.settings.kafka_operator().client_config(),
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

    def env(self) -> dict[str, str]:
        if not self.settings.mongo_auth:
            return {}
        self.settings.mongo_secret()  # generated before the server reads it
        return {"MONGO_LAUNCHER_USERS_FILE": str(self.settings.mongo_users_file)}

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
            security_params="".join(f', "{key}={value}"' for key, value in self._security()),
        )
        self._conf.chmod(0o600)  # holds the shipper's Kafka password in secured mode
        check = subprocess.run(
            ["rsyslogd", "-N1", "-f", str(self._conf)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise InstallError(f"rsyslog refused its configuration:\n{check.stderr}")

    def _security(self) -> list[tuple[str, str]]:
        """librdkafka properties of the shipper's login (PLAIN over TLS) in secured mode,
        checked against the broker first: omkafka would retry a refused login for ever."""
        s = self.settings
        credentials = s.kafka_secrets()
        if credentials is None:
            return []
        password = s.kafka_shipper_password or credentials.shipper_password
        login = KafkaSettings(
            bootstrap_servers=s.kafka_bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism=SHIPPER_MECHANISM,
            sasl_username=SHIPPER_USER,
            sasl_password=password,
            ssl_ca_location=str(credentials.ca),
        )
        try:
            check_access(login, _shipper_setting)
        except KafkaAccessRefused as refused:
            raise InstallError(f"the log shipper cannot use Kafka: {refused}") from None
        return [
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", SHIPPER_MECHANISM),
            ("sasl.username", SHIPPER_USER),
            ("sasl.password", password.get_secret_value()),
            ("ssl.ca.location", str(credentials.ca)),
        ]

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
        env = {
            "NMP_EMULATOR_HOST": "127.0.0.1",
            "NMP_EMULATOR_PORT": str(self.settings.nmp_port),
            "NMP_EMULATOR_STATE_FILE": str(self.data_dir / "state.json"),
            "NMP_EMULATOR_GPUS": str(self.settings.nmp_gpus),
        }
        if self.settings.nmp_real_model:
            # Installs on first use (0.5 GB and a llama-server build; the trainer 2.8 GB), before
            # the emulator starts.
            trainer = (
                install_trainer(self.settings.cache_dir)
                if self.settings.nmp_real_training
                else None
            )
            env.update(
                emulator_env(
                    install(self.settings.cache_dir), trainer, self.settings.nmp_max_train_steps
                )
            )
        return env

    def probe(self) -> Health:
        try:
            response = httpx.get(f"{self.settings.nmp_url}/health/ready", timeout=2)
        except httpx.HTTPError as exc:
            return Health(False, f"readiness failed: {exc}")
        return Health(response.status_code == 200, f"HTTP {response.status_code}")


ALL_COMPONENTS: tuple[type[Component], ...] = (Mongo, Elasticsearch, Kafka, NmpEmulator, Rsyslog)


def _cluster_id() -> str:
    """A random Kafka cluster id: a UUID in URL-safe base64, drawn again while it starts with
    `-`, which the storage tool would read as an option (Kafka's own ids avoid it too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
