"""Bring the stack up and down, and report on it: `up` is idempotent, `down` stops only ours."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flywheel_localstack import process
from flywheel_localstack.components import ALL_COMPONENTS, Component, Health
from flywheel_localstack.config import StackSettings
from flywheel_localstack.topics import ensure_catalog_topics


class StackError(RuntimeError):
    """The stack could not reach the requested state; the message says why."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    ports: tuple[int, ...]
    pid: int | None
    health: Health
    rss_bytes: int


Reporter = Callable[[str], None]


class Stack:
    def __init__(self, settings: StackSettings | None = None, report: Reporter = print) -> None:
        self.settings = settings or StackSettings()
        self.components: dict[str, Component] = {c.name: c(self.settings) for c in ALL_COMPONENTS}
        self._report = report

    # -- queries -------------------------------------------------------------------------------

    def running(self, name: str) -> bool:
        return process.alive(process.PidRecord.load(self.components[name].pid_path))

    def status(self) -> list[ComponentStatus]:
        rows = []
        for name, component in self.components.items():
            record = process.PidRecord.load(component.pid_path)
            if process.alive(record):
                assert record is not None
                rows.append(
                    ComponentStatus(
                        name,
                        component.ports,
                        record.pid,
                        component.probe(),
                        process.rss_bytes(record.pid),
                    )
                )
            else:
                rows.append(
                    ComponentStatus(name, component.ports, None, Health(False, "not running"), 0)
                )
        return rows

    # -- transitions ---------------------------------------------------------------------------

    def install(self, names: Iterable[str] | None = None) -> None:
        for component in self._select(names):
            component.install()

    def up(self, names: Iterable[str] | None = None) -> list[str]:
        """Start what is not running and wait until every selected server is usable.

        Returns the names this call started, so a caller can stop exactly those. When a server
        does not come up, the ones this call started are stopped again before the error.
        """
        wanted = self._with_dependencies(self._select(names))
        self.install(c.name for c in wanted)
        pending = [c for c in wanted if not self.running(c.name)]
        for component in pending:
            self._refuse_taken_ports(component)
        started: list[str] = []
        try:
            self._start_and_wait(wanted, pending, started)
        except BaseException:
            self.down(started)
            raise
        return started

    def _start_and_wait(
        self, wanted: list[Component], pending: list[Component], started: list[str]
    ) -> None:
        healthy = {c.name for c in wanted if c not in pending}
        deadline = time.monotonic() + self.settings.start_timeout_s
        # Topics are (re)ensured on every up: cheap, idempotent, and picks up catalog changes.
        topics_ready = not any(c.name == "kafka" for c in wanted)
        while pending or len(healthy) < len(wanted):
            for component in [c for c in pending if set(c.depends_on) <= healthy]:
                if component.name == "rsyslog" and not topics_ready:
                    continue
                component.prepare()
                process.spawn(
                    component.command(),
                    log_path=component.log_path,
                    pid_path=component.pid_path,
                    env=component.env(),
                )
                started.append(component.name)
                pending.remove(component)
                self._report(f"started {component.name}")
            for name in started:
                if name in healthy:
                    continue
                component = self.components[name]
                if not self.running(name):
                    raise StackError(
                        f"{name} exited during start-up; last log lines:\n{_tail(component)}"
                    )
                if component.probe().ok:
                    healthy.add(name)
                    self._report(f"{name} is ready")
            if "kafka" in healthy and not topics_ready:
                planned, created = ensure_catalog_topics(self.settings.kafka_operator())
                self._report(f"topics: {len(planned)} in the catalog, {len(created)} created")
                topics_ready = True
            if time.monotonic() > deadline:
                late = [c.name for c in wanted if c.name not in healthy]
                raise StackError(
                    f"not ready after {self.settings.start_timeout_s:.0f}s: {late}; "
                    f"see {self.settings.logs_dir}"
                )
            time.sleep(0.25)

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop the selected servers that this stack started, dependents first."""
        stopped = []
        for component in reversed(self._select(names)):
            record = process.PidRecord.load(component.pid_path)
            if process.alive(record):
                assert record is not None
                process.terminate(record, self.settings.stop_timeout_s)
                stopped.append(component.name)
                self._report(f"stopped {component.name}")
            component.pid_path.unlink(missing_ok=True)
        return stopped

    def kill(self, name: str) -> None:
        """SIGKILL one server, as a crash would (for fault tests)."""
        record = process.PidRecord.load(self.components[name].pid_path)
        if record is not None:
            process.kill_hard(record)

    def reset(self) -> None:
        """Stop everything and wipe all data; downloads in the cache are kept."""
        self.down()
        shutil.rmtree(self.settings.data_dir, ignore_errors=True)
        self._report(f"wiped {self.settings.data_dir}")

    # -- helpers -------------------------------------------------------------------------------

    def _select(self, names: Iterable[str] | None) -> list[Component]:
        if names is None and self.settings.only:
            names = [n.strip() for n in self.settings.only.split(",") if n.strip()]
        if names is None:
            return list(self.components.values())
        chosen = set(names)
        unknown = chosen - set(self.components)
        if unknown:
            raise StackError(
                f"unknown components {sorted(unknown)}; known: {', '.join(self.components)}"
            )
        return [c for n, c in self.components.items() if n in chosen]

    def _with_dependencies(self, selected: list[Component]) -> list[Component]:
        names = {c.name for c in selected}
        for component in selected:
            names.update(component.depends_on)
        return [c for n, c in self.components.items() if n in names]

    def _refuse_taken_ports(self, component: Component) -> None:
        for port in component.ports:
            if process.port_in_use(port):
                raise StackError(
                    f"port {port} needed by {component.name} is already taken by another process "
                    f"(not started by this stack); stop it or choose another port with "
                    f"FLYWHEEL_STACK_* settings"
                )


def _tail(component: Component, lines: int = 30) -> str:
    try:
        return "\n".join(component.log_path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
