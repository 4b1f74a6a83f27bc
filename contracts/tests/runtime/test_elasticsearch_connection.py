"""ElasticsearchConnection: API key or basic auth (never both), CA bundle and verification, the
client arguments each mode gives, and secrets kept out of reprs and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel_contracts.runtime import ElasticsearchConnection
from flywheel_contracts.runtime.secrets import SecretFileError
from flywheel_contracts.runtime.testing import captured_logs

pytestmark = pytest.mark.unit

KEY = "c2VjcmV0LWlkOnNlY3JldC1hcGkta2V5"  # the base64 "encoded" form of an API key
PASSWORD = "pa55-w0rd-secret"
HTTPS = SecretStr("https://es.internal:9200")


class _Service(BaseSettings):
    """A service nesting its own subclass, as ingest and datasets do."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_TEST_", env_nested_delimiter="__", hide_input_in_errors=True
    )

    elasticsearch: ElasticsearchConnection = ElasticsearchConnection()


def _connection(**values: Any) -> ElasticsearchConnection:
    return ElasticsearchConnection.model_validate(values)


def test_no_auth_by_default() -> None:
    kwargs = ElasticsearchConnection().client_kwargs()
    assert kwargs == {"hosts": ["http://127.0.0.1:9200"], "verify_certs": True}


def test_an_encoded_api_key_is_passed_as_given() -> None:
    kwargs = _connection(api_key=KEY).client_kwargs()
    assert kwargs["api_key"] == KEY
    assert "http_auth" not in kwargs


def test_an_id_and_key_pair_is_passed_as_a_pair() -> None:
    # The client encodes the pair itself (base64 of "id:key").
    assert _connection(api_key="my-id:my:key").client_kwargs()["api_key"] == ("my-id", "my:key")


def test_basic_auth() -> None:
    kwargs = _connection(username="flywheel", password=PASSWORD).client_kwargs()
    assert kwargs["http_auth"] == ("flywheel", PASSWORD)
    assert "api_key" not in kwargs


def test_secrets_from_files_drop_their_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(f"{KEY}\n")
    (tmp_path / "password").write_text(f"{PASSWORD}\n")
    assert _connection(api_key_file=tmp_path / "key").client_kwargs()["api_key"] == KEY
    basic = _connection(username="u", password_file=tmp_path / "password").client_kwargs()
    assert basic["http_auth"] == ("u", PASSWORD)


def test_an_unreadable_secret_file_names_the_file_only(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    with pytest.raises(SecretFileError, match="nothing"):
        _connection(api_key_file=missing).client_kwargs()


def test_tls_with_a_ca_bundle(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    kwargs = _connection(url=HTTPS, ca_bundle=ca, api_key=KEY).client_kwargs()
    assert kwargs == {
        "hosts": ["https://es.internal:9200"],
        "api_key": KEY,
        "ca_certs": str(ca),
        "verify_certs": True,
    }


def test_a_missing_ca_bundle_is_refused_when_the_client_is_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable file"):
        _connection(url=HTTPS, ca_bundle=tmp_path / "none.pem").client_kwargs()


def test_unverified_tls_is_said_once_in_the_service_log() -> None:
    with captured_logs() as logs:
        kwargs = _connection(url=HTTPS, verify_certs=False).client_kwargs()
    assert kwargs["verify_certs"] is False
    assert kwargs["ssl_show_warn"] is False
    assert "elasticsearch.tls_unverified" in logs.getvalue()
    assert "es.internal" in logs.getvalue()


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"api_key": KEY, "username": "u", "password": PASSWORD}, "not both"),
        ({"api_key": KEY, "api_key_file": "/run/secrets/key"}, "API_KEY or API_KEY_FILE"),
        ({"password": PASSWORD}, "needs a USERNAME"),
        ({"password_file": "/run/secrets/password"}, "needs a USERNAME"),
        ({"username": "u"}, "needs a PASSWORD"),
        ({"username": "u", "password": PASSWORD, "password_file": "/p"}, "not both"),
        ({"username": "a:b", "password": PASSWORD}, "cannot contain"),
        ({"api_key": "  "}, "set but empty"),
        ({"username": "u", "password": ""}, "set but empty"),
        ({"url": "https://u:pw@es:9200", "api_key": KEY}, "carries credentials"),
        ({"url": "http://es:9200", "ca_bundle": "/ca.pem"}, "not https"),
        ({"url": "https://es:9200", "ca_bundle": "/ca.pem", "verify_certs": False}, "VERIFY"),
        ({"url": "es:9200"}, "http"),
    ],
)
def test_ambiguous_or_incomplete_settings_are_refused(
    values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint) as refused:
        _connection(**values)
    assert KEY not in str(refused.value) and PASSWORD not in str(refused.value)


def test_reprs_and_errors_never_show_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_TEST_ELASTICSEARCH__URL", "https://es.internal:9200")
    monkeypatch.setenv("FLYWHEEL_TEST_ELASTICSEARCH__USERNAME", "flywheel")
    monkeypatch.setenv("FLYWHEEL_TEST_ELASTICSEARCH__PASSWORD", PASSWORD)
    settings = _Service().elasticsearch
    assert settings.username == "flywheel"
    for text in (repr(settings), str(settings), repr(_Service()), settings.model_dump_json()):
        assert PASSWORD not in text
    # A refused start (both kinds of credentials) does not print what it was given either.
    monkeypatch.setenv("FLYWHEEL_TEST_ELASTICSEARCH__API_KEY", KEY)
    with pytest.raises(ValidationError) as refused:
        _Service()
    assert PASSWORD not in str(refused.value) and KEY not in str(refused.value)
    assert "not both" in str(refused.value)


def test_every_setting_has_a_natural_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "key").write_text("id:key")
    prefix = "FLYWHEEL_TEST_ELASTICSEARCH__"
    monkeypatch.setenv(f"{prefix}URL", "https://es.internal:9200")
    monkeypatch.setenv(f"{prefix}API_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv(f"{prefix}CA_BUNDLE", str(ca))
    monkeypatch.setenv(f"{prefix}VERIFY_CERTS", "true")
    kwargs = _Service().elasticsearch.client_kwargs()
    assert kwargs["api_key"] == ("id", "key")
    assert kwargs["ca_certs"] == str(ca)
