"""The running llama-server processes, one per deployment of the real model: started when the
deployment gets its GPUs, ready when `/health` answers 200, stopped when the deployment goes.

Everything here runs on the event loop's thread (the scheduler's tick and the handlers), the
thread that must also fork the servers (process.py). Readiness is awaited in a task per server,
so a tick only reads its outcome and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx

from flywheel_nmp_emulator.config import RealBackend
from flywheel_nmp_emulator.real.command import llama_command
from flywheel_nmp_emulator.real.process import ServerProcess, sweep

log = logging.getLogger(__name__)

_SIGILL_EXITS = frozenset({-signal.SIGILL, 128 + signal.SIGILL})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One deployment's llama-server: its process, address, key and readiness."""

    def __init__(
        self,
        deployment: str,
        process: ServerProcess,
        port: int,
        key: str,
        adapters: tuple[str, ...],
    ) -> None:
        self.deployment = deployment
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.key = key
        self.adapters = adapters
        """The customized model ids whose adapters it loaded, in `--lora` order."""
        self.failure: str | None = None
        self._ready = asyncio.Event()
        self._done = asyncio.Event()
        self.waiter: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def lora_index(self, model_id: str) -> int | None:
        return self.adapters.index(model_id) if model_id in self.adapters else None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def wait_ready(self, timeout_s: float) -> bool:
        """Whether it serves, waiting for a start that is under way (a restart, say)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._done.wait()
        return self.ready

    def _settle(self, failure: str | None) -> None:
        self.failure = failure
        if failure is None:
            self._ready.set()
        self._done.set()


class RealServers:
    def __init__(self, settings: RealBackend, run_dir: Path | None) -> None:
        self.settings = settings
        # In-memory state has no folder of its own: a private temporary one, and only the
        # parent-death signal to guard against a SIGKILLed emulator.
        self._temporary = run_dir is None
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="nmp-emulator-llama-"))
        self._servers: dict[str, Server] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0))

    def serves(self, model_id: str) -> bool:
        return model_id == self.settings.model_id

    def sweep(self) -> list[int]:
        """Kill the servers a SIGKILLed predecessor left (start-up)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return sweep(self.run_dir)

    def get(self, deployment: str) -> Server | None:
        return self._servers.get(deployment)

    def deployments(self) -> list[str]:
        return list(self._servers)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Each deployment's server for /emulator/state (never its key)."""
        return {
            deployment: {
                "pid": server.pid,
                "url": server.url,
                "ready": server.ready,
                "failure": server.failure,
                "adapters": list(server.adapters),
                "log": str(server.process.log_path),
            }
            for deployment, server in self._servers.items()
        }

    def start(self, deployment: str, adapters: Sequence[tuple[str, Path]] = ()) -> Server:
        """Spawn the deployment's server (a running one is stopped first) and await its
        readiness in the background."""
        self.stop(deployment)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Not Path.with_suffix: model names have dots ("qwen2.5-coder-0.5b") it would eat.
        stem = str(self.run_dir / deployment.replace("/", "__"))
        port, key = _free_port(), secrets.token_urlsafe(24)
        key_file = Path(f"{stem}.key")
        key_file.touch(mode=0o600)
        key_file.write_text(key)
        command = llama_command(
            self.settings, port=port, key_file=key_file, adapters=[path for _, path in adapters]
        )
        process = ServerProcess(command, Path(f"{stem}.log"), Path(f"{stem}.pid"))
        server = Server(deployment, process, port, key, tuple(model for model, _ in adapters))
        try:
            process.start()
        except OSError as exc:
            key_file.unlink(missing_ok=True)
            server._settle(f"llama-server could not be started: {exc}")
            self._servers[deployment] = server
            return server
        log.info("llama-server %d for %s on %s", process.pid, deployment, server.url)
        server.waiter = asyncio.get_running_loop().create_task(self._await_ready(server, key_file))
        self._servers[deployment] = server
        return server

    async def _await_ready(self, server: Server, key_file: Path) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ready_timeout_s
        failure: str | None = None
        try:
            while True:
                code = server.process.exit_code()
                if code is not None:
                    hint = " (SIGILL: built for another CPU)" if code in _SIGILL_EXITS else ""
                    failure = f"llama-server exited with {code}{hint} while starting"
                    break
                with contextlib.suppress(httpx.HTTPError):
                    # 503 while the model loads, 200 once it serves.
                    health = await self.client.get(f"{server.url}/health", timeout=2.0)
                    if health.status_code == 200:
                        break
                if loop.time() > deadline:
                    failure = f"llama-server not ready after {self.settings.ready_timeout_s:.0f}s"
                    break
                await asyncio.sleep(0.1)
        finally:
            # Read at start-up only; a key on disk longer than needed is a key to leak.
            await asyncio.to_thread(key_file.unlink, missing_ok=True)
        if failure is not None:
            failure = (
                f"{failure}; the end of {server.process.log_path}:\n{server.process.log_tail()}"
            )
            await server.process.stop(self.settings.stop_timeout_s)
        server._settle(failure)

    def stop(self, deployment: str) -> None:
        """Forget the deployment's server and stop it in the background."""
        server = self._servers.pop(deployment, None)
        if server is None:
            return
        if server.waiter is not None:
            server.waiter.cancel()
        if not server._done.is_set():
            server._settle("llama-server stopped")
        task = asyncio.get_running_loop().create_task(
            server.process.stop(self.settings.stop_timeout_s)
        )
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Stop every server and wait until each has exited (emulator shutdown)."""
        for deployment in list(self._servers):
            self.stop(deployment)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        await self.client.aclose()
        if self._temporary:
            await asyncio.to_thread(shutil.rmtree, self.run_dir, ignore_errors=True)
