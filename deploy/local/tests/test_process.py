"""Pid records that survive pid reuse, process-group stops, memory readings and port checks."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flywheel_localstack import process

pytestmark = pytest.mark.unit


def test_spawned_daemon_is_alive_until_terminated(tmp_path: Path) -> None:
    record = process.spawn(
        ["sleep", "30"], log_path=tmp_path / "s.log", pid_path=tmp_path / "s.pid"
    )

    assert process.PidRecord.load(tmp_path / "s.pid") == record
    assert process.alive(record)
    assert process.rss_bytes(record.pid) > 0

    process.terminate(record, timeout_s=5)
    assert not process.alive(record)


def test_an_ended_daemon_reports_its_exit_code_or_signal(tmp_path: Path) -> None:
    exits = process.spawn(
        ["sh", "-c", "exit 3"], log_path=tmp_path / "e.log", pid_path=tmp_path / "e.pid"
    )
    sleeps = process.spawn(
        ["sleep", "30"], log_path=tmp_path / "s.log", pid_path=tmp_path / "s.pid"
    )
    assert process.exit_code(sleeps) is None
    process.kill_hard(sleeps)
    deadline = time.monotonic() + 5
    while (code := process.exit_code(exits)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert code == 3
    assert process.exit_code(sleeps) in (-signal.SIGKILL, -1)  # reaped by kill_hard, or not


@pytest.mark.parametrize(
    "stop",
    [lambda record: process.terminate(record, timeout_s=5), process.kill_hard],
    ids=["terminate", "kill_hard"],
)
def test_a_stop_leaves_no_zombie_of_a_daemon_that_already_exited(
    tmp_path: Path, stop: Callable[[process.PidRecord], None]
) -> None:
    record = process.spawn(["true"], log_path=tmp_path / "t.log", pid_path=tmp_path / "t.pid")
    deadline = time.monotonic() + 5
    while process.alive(record) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Path(f"/proc/{record.pid}").exists(), "exited, but not yet reaped: a zombie"

    stop(record)

    assert not Path(f"/proc/{record.pid}").exists()


def test_the_callers_variables_can_be_kept_from_a_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMA_ARG_PORT", "1")
    monkeypatch.setenv("KEPT_VARIABLE", "yes")
    record = process.spawn(
        ["sh", "-c", "env"],
        log_path=tmp_path / "env.log",
        pid_path=tmp_path / "env.pid",
        drop_env_prefixes=("LLAMA_",),
    )
    while process.exit_code(record) is None:
        time.sleep(0.02)
    printed = (tmp_path / "env.log").read_text()
    assert "KEPT_VARIABLE=yes" in printed
    assert "LLAMA_ARG_PORT" not in printed


def test_a_reused_pid_is_not_taken_for_ours(tmp_path: Path) -> None:
    record = process.spawn(
        ["sleep", "30"], log_path=tmp_path / "s.log", pid_path=tmp_path / "s.pid"
    )
    try:
        impostor = process.PidRecord(record.pid, record.start_ticks + 1)
        assert not process.alive(impostor)
    finally:
        process.kill_hard(record)
    assert not process.alive(record)


def test_missing_or_garbled_pid_files_mean_not_running(tmp_path: Path) -> None:
    garbled = tmp_path / "garbled.pid"
    garbled.write_text("not a pid")

    assert process.PidRecord.load(tmp_path / "absent.pid") is None
    assert process.PidRecord.load(garbled) is None
    assert not process.alive(None)


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert process.port_in_use(port)
    assert not process.port_in_use(port)
