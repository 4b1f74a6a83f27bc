"""NmpSettings: defaults from nmp-contract.md, URL hygiene, nesting in a service's settings."""

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel_contracts.runtime.nmp import NmpSettings

pytestmark = pytest.mark.unit


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_TEST_", env_nested_delimiter="__")

    nmp: NmpSettings = NmpSettings()


def test_defaults_are_the_contracts() -> None:
    settings = NmpSettings()
    assert settings.nemo_base_url == "http://nemo.test"
    assert settings.nim_base_url == "http://nim.test"
    assert settings.datastore_base_url == "http://data-store.test"
    assert settings.namespace == "dfwbp"
    assert settings.hf_token is None


def test_trailing_slashes_are_dropped() -> None:
    settings = NmpSettings(nemo_base_url="http://127.0.0.1:8700/prefix/")
    assert settings.nemo_base_url == "http://127.0.0.1:8700/prefix"


@pytest.mark.parametrize(
    "url", ["nemo.test", "ftp://nemo.test", "http://", "http://nemo.test/?x=1", "http://n#f"]
)
def test_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        NmpSettings(nim_base_url=url)


def test_read_from_a_service_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_TEST_NMP__NEMO_BASE_URL", "http://127.0.0.1:9000/")
    monkeypatch.setenv("FLYWHEEL_TEST_NMP__HF_TOKEN", "hf-secret")
    monkeypatch.setenv("FLYWHEEL_TEST_NMP__RETRY_ATTEMPTS", "2")
    nmp = ServiceSettings().nmp
    assert nmp.nemo_base_url == "http://127.0.0.1:9000"
    assert nmp.retry_attempts == 2
    assert nmp.hf_token is not None
    assert nmp.hf_token.get_secret_value() == "hf-secret"
    assert "hf-secret" not in repr(nmp)


@pytest.mark.parametrize(
    "field", [{"retry_attempts": 0}, {"request_timeout_s": 0}, {"namespace": "a/b"}]
)
def test_out_of_range_values_are_refused(field: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NmpSettings.model_validate(field)
