"""The intake refuses to start open to the network, and says which setting to set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from flywheel_contracts.runtime.network import is_loopback
from flywheel_ingest.app import create_app
from flywheel_ingest.config import IngestSettings
from flywheel_ingest.security import InsecureIntake, check_intake_exposure

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "ingest", "localhost.evil.org"])
def test_any_other_host_counts_as_the_network(host: str) -> None:
    assert not is_loopback(host)


def test_an_open_intake_on_a_network_host_is_refused_naming_the_token_setting() -> None:
    with pytest.raises(InsecureIntake, match="set FLYWHEEL_INGEST_INTAKE__TOKEN"):
        check_intake_exposure("0.0.0.0", authenticated=False, open_allowed=False)


def test_an_open_intake_on_loopback_starts_with_a_warning() -> None:
    warning = check_intake_exposure("127.0.0.1", authenticated=False, open_allowed=False)
    assert warning is not None and "without a token" in warning


def test_an_intake_with_a_token_starts_silently_anywhere() -> None:
    assert check_intake_exposure("0.0.0.0", authenticated=True, open_allowed=False) is None
    assert check_intake_exposure("127.0.0.1", authenticated=True, open_allowed=False) is None


def test_an_intake_deliberately_opened_to_the_network_starts_with_a_warning() -> None:
    warning = check_intake_exposure("0.0.0.0", authenticated=False, open_allowed=True)
    assert warning is not None and "FLYWHEEL_INGEST_INTAKE__OPEN" in warning


@pytest.mark.parametrize("token", ["", "   ", "\t\n"])
def test_an_empty_configured_token_refuses_the_start(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("FLYWHEEL_INGEST_INTAKE__TOKEN", token)
    with pytest.raises(ValidationError, match="FLYWHEEL_INGEST_INTAKE__TOKEN is set but empty"):
        IngestSettings()


def test_settings_on_a_network_host_without_a_token_refuse_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_INGEST_HTTP_HOST", "0.0.0.0")
    with pytest.raises(ValidationError, match=r"FLYWHEEL_INGEST_HTTP_HOST=0\.0\.0\.0"):
        IngestSettings()


def test_settings_on_a_network_host_start_with_the_global_or_a_scoped_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_INGEST_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("FLYWHEEL_INGEST_INTAKE__TOKEN", "s3cret")
    assert IngestSettings().intake_warning() is None
    monkeypatch.delenv("FLYWHEEL_INGEST_INTAKE__TOKEN")
    monkeypatch.setenv("FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__TOKEN", "acme-s3cret")
    monkeypatch.setenv("FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__CLIENTS", '["acme"]')
    assert IngestSettings().intake_warning() is None


def test_the_default_settings_warn_of_the_open_loopback_intake() -> None:
    assert IngestSettings().intake_warning() is not None


def test_a_scoped_token_is_read_from_its_file_without_surrounding_whitespace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "acme-token"
    secret.write_text("acme-s3cret\n")
    monkeypatch.setenv("FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__TOKEN_FILE", str(secret))
    monkeypatch.setenv("FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__CLIENTS", '["acme", "acme-eu"]')
    token = IngestSettings().intake.tokens["acme"]
    assert token.secret.get_secret_value() == "acme-s3cret"
    assert token.allows("acme-eu") and not token.allows("globex")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TOKEN", " ", "TOKEN is set but empty"),
        ("TOKEN_FILE", "/nonexistent/secret", "cannot be read"),
        ("CLIENTS_ONLY", "", "needs TOKEN or TOKEN_FILE"),
    ],
)
def test_a_scoped_token_without_a_usable_secret_refuses_the_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    if name != "CLIENTS_ONLY":
        monkeypatch.setenv(f"FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__{name}", value)
    monkeypatch.setenv("FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__CLIENTS", '["acme"]')
    with pytest.raises(ValidationError, match=message):
        IngestSettings()


def test_an_empty_secret_file_refuses_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "empty"
    secret.write_text("\n")
    monkeypatch.setenv("FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__TOKEN_FILE", str(secret))
    monkeypatch.setenv("FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__CLIENTS", '["acme"]')
    with pytest.raises(ValidationError, match="is empty"):
        IngestSettings()


def test_a_scoped_token_names_no_clients_or_an_odd_name_refuses_the_start() -> None:
    with pytest.raises(ValidationError):
        IngestSettings.model_validate({"intake": {"tokens": {"a": {"token": "x", "clients": []}}}})
    with pytest.raises(ValidationError, match="must match"):
        IngestSettings.model_validate(
            {"intake": {"tokens": {"a b": {"token": "x", "clients": ["*"]}}}}
        )


@pytest.mark.parametrize(
    "environment",
    [
        {
            "FLYWHEEL_INGEST_HTTP_HOST": "0.0.0.0",
            "FLYWHEEL_INGEST_ELASTICSEARCH__URL": "http://user:SECRET-1@es:9200",
        },
        {
            "FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__TOKEN": "SECRET-1",
            "FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__TOKEN_FILE": "/run/secrets/acme",
            "FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__CLIENTS": '["acme"]',
        },
        {
            "FLYWHEEL_INGEST_INTAKE__TOKEN": "SECRET-1",
            "FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__TOKEN": "SECRET-1",
            "FLYWHEEL_INGEST_INTAKE__TOKENS__ACME__CLIENTS": '["acme"]',
        },
    ],
    ids=["open-on-the-network", "token-and-file", "one-secret-twice"],
)
def test_a_refused_start_never_prints_a_secret(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        IngestSettings()
    assert "SECRET-1" not in str(refused.value)


def test_the_process_refuses_to_start_open_on_the_network_saying_what_to_set() -> None:
    # Hermetic: the settings are refused before anything is connected to.
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_INGEST_")},
        "FLYWHEEL_INGEST_HTTP_HOST": "0.0.0.0",
        "FLYWHEEL_INGEST_HTTP_PORT": "0",
    }
    started = subprocess.run(
        [sys.executable, "-m", "flywheel_ingest"],
        env=environment,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert b"set FLYWHEEL_INGEST_INTAKE__TOKEN" in started.stderr


@pytest.mark.parametrize(("token", "warnings"), [(None, 1), ("s3cret", 0)])
def test_the_composition_root_warns_once_of_an_open_loopback_intake(
    token: str | None, warnings: int
) -> None:
    settings = IngestSettings.model_validate({"intake": {"token": token}})
    with capture_logs() as logs:
        create_app(settings)  # builds only; nothing connects before the app starts
    assert [log["event"] for log in logs].count("intake.open") == warnings
