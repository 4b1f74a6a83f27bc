"""Start, find and stop the stack's daemons through pid files that remember what we started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_SPAWNED: dict[int, subprocess.Popen[bytes]] = {}
"""The daemons this process spawned, by pid (see `spawn`)."""


@dataclass(frozen=True)
class PidRecord:
    """A started process: its pid and kernel start time, so a reused pid is not mistaken for it."""

    pid: int
    start_ticks: int

    def dump(self) -> str:
        return f"{self.pid} {self.start_ticks}\n"

    @classmethod
    def load(cls, path: Path) -> PidRecord | None:
        try:
            pid, ticks = path.read_text().split()
            return cls(int(pid), int(ticks))
        except (FileNotFoundError, ValueError):
            return None


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces, so split after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def alive(record: PidRecord | None) -> bool:
    return record is not None and _start_ticks(record.pid) == record.start_ticks


def spawn(
    cmd: list[str],
    *,
    log_path: Path,
    pid_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    drop_env_prefixes: tuple[str, ...] = (),
) -> PidRecord:
    """Start a daemon in its own session, detached from the caller, logging to log_path, with
    the caller's environment (less the variables starting with `drop_env_prefixes`) and `env`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith(drop_env_prefixes)},
                **(env or {}),
            },
            cwd=cwd,
        )
    # Held, not dropped: a dropped Popen of a running child is reaped by the next Popen made
    # anywhere in this process (subprocess's own clean-up), and its exit code lost with it.
    _SPAWNED[proc.pid] = proc
    ticks = _start_ticks(proc.pid)
    record = PidRecord(proc.pid, ticks or 0)
    pid_path.write_text(record.dump())
    return record


def terminate(record: PidRecord, timeout_s: float) -> None:
    """SIGTERM the daemon's process group, then SIGKILL what is left after timeout_s."""
    if _ended(record):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _ended(record):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGKILL)
    while not _ended(record):
        time.sleep(0.05)


def kill_hard(record: PidRecord) -> None:
    """SIGKILL without warning, as a crash would."""
    if _ended(record):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGKILL)
    while not _ended(record):
        time.sleep(0.05)


def _ended(record: PidRecord) -> bool:
    """True once the daemon has ended, and then reaped: checked in the other order, a child
    that exits between the two checks would stay a zombie, its /proc entry with it."""
    if alive(record):
        return False
    _reap(record.pid)
    return True


def exit_code(record: PidRecord) -> int | None:
    """How a daemon this process spawned ended (reaping it): its exit code, or minus the signal
    that killed it, as subprocess reports it; None while it runs. -1: it ended, how is unknown
    (it was reaped elsewhere, or is not our child)."""
    spawned = _SPAWNED.get(record.pid)
    if spawned is not None:
        return spawned.poll()
    try:
        pid, status = os.waitpid(record.pid, os.WNOHANG)
    except ChildProcessError:
        return None if alive(record) else -1
    if pid == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def _reap(pid: int) -> None:
    # A daemon we spawned in this very process stays a zombie until we wait for it.
    spawned = _SPAWNED.get(pid)
    if spawned is not None:
        spawned.poll()
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    total = 0
    for child in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            continue
    return total


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return found
    for child in map(int, children):
        found.append(child)
        found.extend(_descendants(child))
    return found


def port_in_use(port: int) -> bool:
    """True when something already listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
