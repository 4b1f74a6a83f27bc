"""One server process that cannot outlive the emulator.

Two guards, because either alone leaves a gap:
- the kernel's parent-death signal (Linux `PR_SET_PDEATHSIG`): the child gets SIGKILL the moment
  the thread that started it dies, SIGKILL of the emulator included, which no handler can catch;
- a pid file per process (pid and kernel start time) in the run folder, which the next emulator
  reads at start to kill whatever survived (a non-Linux host, or a child forked by a thread that
  is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _parent_death_guard(niceness: int = 0) -> Callable[[], None] | None:
    """What runs in the child between fork and exec: ask for SIGKILL when the parent dies, and
    exit if the parent died already (the signal is only armed for a parent still alive); then
    lower its priority by `niceness`."""
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, in the parent: the child of a threaded process may call a C function, but
    # importing or loading a library there could deadlock on a lock another thread held.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def guard() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
        if niceness:
            os.nice(niceness)

    return guard


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None if it is gone or a zombie): with
    the pid it names one process, never a later one that reused the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


@dataclass(frozen=True)
class PidFile:
    """What the next emulator needs to find a survivor: pid, start time, binary."""

    pid: int
    start_ticks: int
    binary: str

    def write(self, path: Path) -> None:
        path.write_text(
            json.dumps({"pid": self.pid, "ticks": self.start_ticks, "bin": self.binary})
        )

    @classmethod
    def read(cls, path: Path) -> PidFile | None:
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), int(data["ticks"]), str(data["bin"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.start_ticks and self._runs_binary()

    def _runs_binary(self) -> bool:
        # A guard against a pid and start time met again after a reboot. The binary is argv[0],
        # or argv[1] when it is a script the kernel ran through its interpreter.
        try:
            argv = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")[:2]
        except OSError:
            return False
        return self.binary in (arg.decode(errors="replace") for arg in argv)


def sweep(run_dir: Path) -> list[int]:
    """Kill the servers a previous emulator left running (SIGKILL: they serve nobody now) and
    remove every pid file; the pids killed."""
    killed = []
    for path in sorted(run_dir.glob("*.pid")):
        record = PidFile.read(path)
        if record is not None and record.alive():
            # Each server leads a session of its own, so its group is its pid.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pid, signal.SIGKILL)
            killed.append(record.pid)
            log.warning(
                "killed %s %d left by a previous emulator (%s)", record.binary, record.pid, path
            )
        path.unlink(missing_ok=True)
    return killed


class ServerProcess:
    """A child process logging to `log_path`, recorded in `pid_path` while it runs."""

    def __init__(
        self, command: list[str], log_path: Path, pid_path: Path, niceness: int = 0
    ) -> None:
        self.command = command
        self.niceness = niceness
        self.log_path = log_path
        self.pid_path = pid_path
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    def start(self) -> None:
        """Spawn it. Call from the thread that lives as long as the emulator (the event loop's):
        the parent-death signal follows the forking thread, not the process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            self._popen = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: a terminal's Ctrl-C reaches the emulator, which stops it in
                # order, and stop() can signal its whole group.
                start_new_session=True,
                preexec_fn=_parent_death_guard(self.niceness),
                # llama.cpp reads LLAMA_ARG_* from its environment: a stray one would change a
                # server whose flags the settings promise.
                env={k: v for k, v in os.environ.items() if not k.startswith("LLAMA_")},
            )
        ticks = start_ticks(self._popen.pid)
        PidFile(self._popen.pid, ticks or 0, self.command[0]).write(self.pid_path)

    def exit_code(self) -> int | None:
        """None while it runs; its exit code (minus the signal) once it ended."""
        return None if self._popen is None else self._popen.poll()

    async def stop(self, timeout_s: float) -> None:
        """SIGTERM its group, SIGKILL after `timeout_s`, reap it, drop its pid file."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            self._signal(signal.SIGTERM)
            # Reaped in a worker thread: waitpid blocks, the event loop must not.
            try:
                await asyncio.wait_for(asyncio.to_thread(popen.wait), timeout_s)
            except TimeoutError:
                log.warning(
                    "llama-server %d ignored SIGTERM for %.0fs: SIGKILL", popen.pid, timeout_s
                )
                self._signal(signal.SIGKILL)
                await asyncio.to_thread(popen.wait)
        await asyncio.to_thread(self.pid_path.unlink, missing_ok=True)

    def kill_now(self) -> None:
        """SIGKILL and reap without waiting on the loop (for a shutdown with no loop left)."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            self._signal(signal.SIGKILL)
            popen.wait()
        self.pid_path.unlink(missing_ok=True)

    def _signal(self, signum: int) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signum)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
