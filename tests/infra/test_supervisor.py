"""The supervisor's promises: idempotent up, clear port errors, data kept across down/up."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from flywheel_localstack.cli import format_status
from flywheel_localstack.config import StackSettings
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_localstack.supervisor import Stack, StackError

pytestmark = pytest.mark.integration


def _local(stack: StackHandle) -> Stack:
    if stack._local is None:
        pytest.skip("needs the local stack")
    return stack._local


def test_a_second_up_changes_nothing(stack: StackHandle) -> None:
    local = _local(stack)
    before = {row.name: row.pid for row in local.status()}

    started = Stack(report=lambda _m: None).up()

    assert started == []
    assert {row.name: row.pid for row in local.status()} == before


def test_a_port_taken_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = StackSettings(state_dir=tmp_path, mongo_port=port)

        with pytest.raises(StackError, match=f"port {port} needed by mongo is already taken"):
            Stack(settings, report=lambda _m: None).up(["mongo"])

    assert not (tmp_path / "run" / "mongo.pid").exists()


def test_status_reports_every_component_healthy_within_the_memory_budget(
    stack: StackHandle,
) -> None:
    rows = _local(stack).status()
    running = [row for row in rows if row.pid is not None]

    assert running, format_status(rows)
    assert all(row.health.ok for row in running), format_status(rows)
    assert all(row.rss_bytes > 0 for row in running)
    assert sum(row.rss_bytes for row in rows) < 3 * 2**30, format_status(rows)
    assert "total" in format_status(rows)


def test_data_survives_down_and_up(stack: StackHandle) -> None:
    marker = uuid.uuid4().hex
    client: MongoClient[dict[str, object]]
    with MongoClient[dict[str, object]](stack.mongo_url) as client:
        client["flywheel_test"]["survivors"].insert_one({"marker": marker})
    httpx.put(
        f"{stack.elasticsearch_url}/test-survivors/_doc/{marker}?refresh=true",
        json={"marker": marker},
        timeout=30,
    ).raise_for_status()

    stack.restart("mongo")
    stack.restart("elasticsearch")

    with MongoClient(stack.mongo_url) as client:
        assert client["flywheel_test"]["survivors"].find_one({"marker": marker}) is not None
    found = httpx.get(f"{stack.elasticsearch_url}/test-survivors/_doc/{marker}", timeout=30)
    assert found.json()["_source"]["marker"] == marker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_failed_up_stops_what_it_started(tmp_path: Path) -> None:
    settings = StackSettings(
        state_dir=tmp_path,
        mongo_port=_free_port(),
        nmp_port=_free_port(),
        mongo_heap="not-a-size",  # the JVM refuses to start
    )
    stack = Stack(settings, report=lambda _m: None)

    with pytest.raises(StackError, match="mongo exited during start-up"):
        stack.up(["mongo", "nmp-emulator"])

    assert not stack.running("nmp-emulator")
    assert not (tmp_path / "run" / "nmp-emulator.pid").exists()
