"""Settings come from FLYWHEEL_CUSTOMIZER_* variables, nested with `__`."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flywheel_customizer.config import CustomizerSettings, JobSettings

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    settings = CustomizerSettings()
    assert (settings.service_name, settings.http_port) == ("customizer", 8105)
    assert settings.consumer_group == "flywheel.customizer"
    assert settings.jobs.stall_timeout_s == 3600


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_CUSTOMIZER_NMP__NEMO_BASE_URL", "http://127.0.0.1:8700/")
    monkeypatch.setenv("FLYWHEEL_CUSTOMIZER_NMP__NAMESPACE", "team-a")
    monkeypatch.setenv("FLYWHEEL_CUSTOMIZER_JOBS__STALL_TIMEOUT_S", "90")
    monkeypatch.setenv("FLYWHEEL_CUSTOMIZER_KAFKA__TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("FLYWHEEL_CUSTOMIZER_GROUP_ID", "flywheel.customizer.t1")
    settings = CustomizerSettings()
    assert settings.nmp.nemo_base_url == "http://127.0.0.1:8700"
    assert settings.nmp.namespace == "team-a"
    assert settings.jobs.stall_timeout_s == 90
    assert settings.kafka.topic("nim.up") == "t1.nim.up"
    assert settings.consumer_group == "flywheel.customizer.t1"


def test_lease_must_outlive_a_poll_interval() -> None:
    with pytest.raises(ValidationError, match="lease_ttl_s"):
        JobSettings(poll_interval_s=5, lease_ttl_s=5)
