"""The status table, and settings from the environment."""

from __future__ import annotations

import base64
import uuid

import pytest

from flywheel_localstack import components
from flywheel_localstack.cli import format_status
from flywheel_localstack.components import Health
from flywheel_localstack.config import StackSettings
from flywheel_localstack.supervisor import ComponentStatus

pytestmark = pytest.mark.unit


def test_status_table_shows_ports_pids_health_and_total_memory() -> None:
    rows = [
        ComponentStatus("kafka", (9092, 9093), 123, Health(True, "3 topics"), 300 * 2**20),
        ComponentStatus("rsyslog", (), None, Health(False, "not running"), 0),
    ]

    table = format_status(rows).splitlines()

    assert table[2].split()[:5] == ["kafka", "9092,9093", "123", "healthy", "300"]
    assert table[3].split()[:4] == ["rsyslog", "-", "-", "DOWN"]
    assert table[-1].split() == ["total", "300", "MiB"]


def test_ports_and_folders_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_STACK_KAFKA_PORT", "19092")
    monkeypatch.setenv("FLYWHEEL_STACK_SHIPPER_DIR", "/tmp/logs-in")

    settings = StackSettings()

    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert str(settings.shipper_folder) == "/tmp/logs-in"


def test_a_kafka_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first UUID encodes to "-" first (0xf8 = 111110 in the top six bits).
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(int=1)])
    monkeypatch.setattr("flywheel_localstack.components.uuid.uuid4", lambda: next(drawn))
    cluster_id = components._cluster_id()
    assert not cluster_id.startswith("-")
    assert cluster_id == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).decode().rstrip("=")
