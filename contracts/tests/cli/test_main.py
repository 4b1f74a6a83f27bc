"""The console script: one line on stderr and a non-zero exit for every failure, and where the
Kafka settings come from."""

from uuid import uuid4

import pytest
from click.testing import CliRunner

from flywheel_contracts.cli.errors import ExitCode
from flywheel_contracts.cli.main import Session, cli, main
from flywheel_contracts.cli.settings import kafka_settings
from flywheel_contracts.runtime.settings import KafkaSettings

from .conftest import FakeBus

pytestmark = pytest.mark.unit

# Nothing listens on port 1 of the loopback: the connection is refused at once.
_NO_BROKER = "127.0.0.1:1"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["run", "--workload", "w"], ExitCode.USAGE, "Missing option '--client'"),
        (["watch", "nope"], ExitCode.USAGE, "'nope' is not a valid UUID"),
        (["nonsense"], ExitCode.USAGE, "No such command 'nonsense'"),
        (
            ["--bootstrap", _NO_BROKER, "cancel", str(uuid4())],
            ExitCode.ERROR,
            f"cannot reach Kafka at {_NO_BROKER}",
        ),
        (
            ["--bootstrap", _NO_BROKER, "report", str(uuid4())],
            ExitCode.ERROR,
            f"cannot reach Kafka at {_NO_BROKER}",
        ),
        (["--bootstrap", _NO_BROKER, "topics"], ExitCode.ERROR, "cannot reach Kafka"),
        (["--bootstrap", "", "topics"], ExitCode.ERROR, "invalid Kafka settings"),
    ],
)
def test_failures_are_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    code: ExitCode,
    message: str,
) -> None:
    monkeypatch.setenv("FLYWHEEL_KAFKA__REQUEST_TIMEOUT_S", "0.5")
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("flywheel: error: ")
    assert message in line


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == ExitCode.OK
    assert "watch" in capsys.readouterr().out


def test_bootstrap_comes_from_the_option_or_the_environment() -> None:
    seen: list[str] = []

    def record(kafka: KafkaSettings) -> FakeBus:
        seen.append(kafka.bootstrap_servers)
        return FakeBus()

    runner = CliRunner(env={"FLYWHEEL_KAFKA_BOOTSTRAP": "from-env:9092"})
    for argv in (["topics"], ["--bootstrap", "from-option:9092", "topics"]):
        assert runner.invoke(cli, argv, obj=Session(make_bus=record)).exit_code == 0
    assert seen == ["from-env:9092", "from-option:9092"]


def test_security_options_come_from_the_services_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FLYWHEEL_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FLYWHEEL_KAFKA__SASL_USERNAME", "flywheel")
    monkeypatch.setenv("FLYWHEEL_KAFKA__SASL_PASSWORD", "secret")
    config = kafka_settings("broker:9093").client_config()
    assert config == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "flywheel",
        "sasl.password": "secret",
    }
