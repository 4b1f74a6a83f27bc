"""One fixture layer for every test that needs servers, whatever provides them.

Modes (``--stack`` or FLYWHEEL_TEST_STACK):
- ``local`` (default): the real servers of deploy/local, started if not running and stopped at
  the end if this session started them;
- ``containers``: testcontainers on a Docker engine;
- ``external``: servers already running elsewhere, named by FLYWHEEL_KAFKA_BOOTSTRAP,
  FLYWHEEL_ELASTICSEARCH_URL, FLYWHEEL_MONGO_URL and FLYWHEEL_NMP_URL.
Fault injection (stop/start/restart/kill) is only offered by the local mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import pytest

from flywheel_localstack.supervisor import Stack


class StackHandle:
    """Where the servers are, and (local mode only) a way to break them."""

    def __init__(
        self,
        *,
        kafka_bootstrap: str,
        elasticsearch_url: str,
        mongo_url: str,
        nmp_url: str,
        shipper_dir: Path | None,
        local: Stack | None = None,
        kafka_security: Mapping[str, str] | None = None,
    ) -> None:
        self.kafka_bootstrap = kafka_bootstrap
        # How clients log in to this Kafka, as `KafkaSettings` fields (empty: plaintext).
        self.kafka_security = dict(kafka_security or {})
        self.elasticsearch_url = elasticsearch_url
        self.mongo_url = mongo_url
        self.nmp_url = nmp_url
        self.shipper_dir = shipper_dir
        self._local = local

    def _require_local(self) -> Stack:
        if self._local is None:
            pytest.skip("fault injection needs the local stack (--stack local)")
        return self._local

    def stop(self, name: str) -> None:
        self._require_local().down([name])

    def start(self, name: str) -> None:
        self._require_local().up([name])

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def kill(self, name: str) -> None:
        """SIGKILL the server, as a crash would; `start` brings it back."""
        self._require_local().kill(name)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stack",
        choices=("local", "containers", "external"),
        default=os.environ.get("FLYWHEEL_TEST_STACK", "local"),
        help="where integration tests find their servers",
    )


def _local_stack() -> Iterator[StackHandle]:
    stack = Stack(report=lambda _message: None)
    started = stack.up()
    s = stack.settings
    try:
        yield StackHandle(
            kafka_bootstrap=s.kafka_bootstrap,
            elasticsearch_url=s.elasticsearch_url,
            mongo_url=s.mongo_url,
            nmp_url=s.nmp_url,
            shipper_dir=s.shipper_folder,
            local=stack,
            kafka_security=s.kafka_security_fields(),
        )
    finally:
        # Leave alone what a developer started by hand; stop what this session started.
        stack.down(started)


def _external_stack() -> Iterator[StackHandle]:
    try:
        yield StackHandle(
            kafka_bootstrap=os.environ["FLYWHEEL_KAFKA_BOOTSTRAP"],
            elasticsearch_url=os.environ["FLYWHEEL_ELASTICSEARCH_URL"],
            mongo_url=os.environ["FLYWHEEL_MONGO_URL"],
            nmp_url=os.environ["FLYWHEEL_NMP_URL"],
            shipper_dir=Path(os.environ["FLYWHEEL_SHIPPER_DIR"])
            if "FLYWHEEL_SHIPPER_DIR" in os.environ
            else None,
        )
    except KeyError as missing:
        pytest.fail(f"--stack external needs the environment variable {missing}")


def _container_stack() -> Iterator[StackHandle]:
    try:
        from testcontainers.community.elasticsearch import ElasticSearchContainer
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.mongodb import MongoDbContainer
    except ImportError:
        pytest.skip("--stack containers needs `pip install testcontainers` and a Docker engine")
    with ExitStack() as running:
        kafka = running.enter_context(KafkaContainer("apache/kafka:4.1.0").with_kraft())
        elastic = running.enter_context(ElasticSearchContainer("elasticsearch:7.17.25"))
        mongo = running.enter_context(MongoDbContainer("mongo:7"))
        yield StackHandle(
            kafka_bootstrap=kafka.get_bootstrap_server(),
            elasticsearch_url=f"http://{elastic.get_container_host_ip()}:"
            f"{elastic.get_exposed_port(9200)}",
            mongo_url=mongo.get_connection_url(),
            # The emulator is our own program; containers mode expects it at its usual port.
            nmp_url=os.environ.get("FLYWHEEL_NMP_URL", "http://127.0.0.1:8700"),
            shipper_dir=None,
        )


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[StackHandle]:
    mode = request.config.getoption("--stack")
    provider = {"local": _local_stack, "external": _external_stack, "containers": _container_stack}[
        mode
    ]
    yield from provider()


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: StackHandle) -> str:
    return stack.kafka_bootstrap


@pytest.fixture(scope="session")
def mongo_url(stack: StackHandle) -> str:
    return stack.mongo_url


@pytest.fixture(scope="session")
def elasticsearch_url(stack: StackHandle) -> str:
    return stack.elasticsearch_url


@pytest.fixture(scope="session")
def nmp_url(stack: StackHandle) -> str:
    return stack.nmp_url
