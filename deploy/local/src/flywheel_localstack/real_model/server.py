"""llama-server on 127.0.0.1, started for the length of a `with` block and always stopped.

Its slots: `--parallel N` slots of `ctx_per_slot` tokens each (`--ctx-size` is the total, split
evenly when the KV cache is not unified, which is made explicit). Requests beyond the slots wait
in the server's queue: it never answers 429. `--n-predict` caps every answer, since a request
without `max_tokens` whose grammar forbids stopping (tool_choice "required" with a model that
never opens `<tool_call>`) would otherwise generate until its slot's context is full.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from flywheel_contracts.runtime.testing import free_port
from flywheel_localstack.config import StackSettings
from flywheel_localstack.process import PidRecord, alive, exit_code, rss_bytes, spawn, terminate
from flywheel_localstack.real_model.install import RealModel

_STOP_TIMEOUT_S = 10.0
_SIGILL_EXITS = frozenset({-signal.SIGILL, 128 + signal.SIGILL})


class LlamaServerError(RuntimeError):
    """llama-server did not come up; the message has the end of its log."""


class LlamaServer:
    """`model` served at `base_url` (OpenAI-compatible, `/v1`) while the block runs.

    `api_key` makes the server refuse requests without `Authorization: Bearer <key>` (401); the
    key reaches it in a file readable by this user alone, never on its command line.
    """

    def __init__(
        self,
        model: RealModel,
        *,
        api_key: str | None = None,
        parallel: int = 2,
        ctx_per_slot: int = 8192,
        threads: int | None = None,
        max_tokens: int = 1024,
        cache_ram_mib: int = 512,
        lora: Sequence[Path] = (),
        log_dir: Path | None = None,
        ready_timeout_s: float = 120.0,
    ) -> None:
        if parallel < 1 or ctx_per_slot < 512 or max_tokens < 1:
            raise ValueError("parallel >= 1, ctx_per_slot >= 512 and max_tokens >= 1")
        self.model = model
        self.api_key = api_key
        self.parallel = parallel
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads or len(os.sched_getaffinity(0))
        self.max_tokens = max_tokens
        self.cache_ram_mib = cache_ram_mib
        self.lora = tuple(lora)
        self.log_dir = log_dir or StackSettings().logs_dir
        self.ready_timeout_s = ready_timeout_s
        self.port = 0
        self.model_id = model.served_model
        self.log_path = self.log_dir / "llama-server.log"
        self._record: PidRecord | None = None

    # -- where it is ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes: the part before `/chat/completions`."""
        return f"{self.url}/v1"

    @property
    def pid(self) -> int | None:
        return None if self._record is None else self._record.pid

    @property
    def running(self) -> bool:
        return alive(self._record)

    def headers(self) -> dict[str, str]:
        return {} if self.api_key is None else {"Authorization": f"Bearer {self.api_key}"}

    def rss_bytes(self) -> int:
        return 0 if self.pid is None else rss_bytes(self.pid)

    # -- start and stop ------------------------------------------------------------------------

    def command(self, port: int, key_file: Path | None = None) -> list[str]:
        cmd = [
            str(self.model.server),
            "--model",
            str(self.model.model),
            "--alias",
            self.model.served_model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--jinja",
            "--parallel",
            str(self.parallel),
            "--ctx-size",
            str(self.parallel * self.ctx_per_slot),
            "--no-kv-unified",
            "--threads",
            str(self.threads),
            "--n-predict",
            str(self.max_tokens),
            # Prompts of idle slots kept in RAM for reuse; llama.cpp's default of 8 GiB took
            # resident memory from 0.8 to 1.9 GB over one ICL evaluation.
            "--cache-ram",
            str(self.cache_ram_mib),
            "--no-ui",
        ]
        if key_file is not None:
            cmd += ["--api-key-file", str(key_file)]
        for adapter in self.lora:
            cmd += ["--lora", str(adapter)]
        return cmd

    def start(self) -> Self:
        """Start on a free port and return once `/health` answers ok and the model is listed;
        LlamaServerError (the process stopped) when it exits or is not ready in time."""
        if self.running:
            return self
        self.port = free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"llama-server-{self.port}.log"
        with tempfile.TemporaryDirectory(prefix="llama-key-") as private:
            key_file = None
            if self.api_key is not None:
                key_file = Path(private) / "key"
                key_file.touch(mode=0o600)
                key_file.write_text(self.api_key)
            self._record = spawn(
                self.command(self.port, key_file),
                log_path=self.log_path,
                pid_path=self.log_path.with_suffix(".pid"),
                # llama.cpp reads LLAMA_ARG_* and LLAMA_API_KEY from its environment: a stray one
                # in the caller's would change a server whose flags this class promises.
                drop_env_prefixes=("LLAMA_",),
            )
            try:
                self._wait_ready()  # the key file is read at start-up, so it may go after this
            except BaseException:
                self.stop()
                raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            assert self._record is not None
            code = exit_code(self._record)
            if code is not None:
                hint = (
                    " (SIGILL: the binary uses instructions this CPU lacks)"
                    if code in _SIGILL_EXITS
                    else ""
                )
                raise LlamaServerError(
                    f"llama-server exited with {code}{hint} while starting; "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                # 503 while the model loads, 200 {"status": "ok"} once it serves.
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    models = httpx.get(f"{self.base_url}/models", headers=self.headers(), timeout=5)
                    models.raise_for_status()
                    self.model_id = models.json()["data"][0]["id"]
                    return
            if time.monotonic() > deadline:
                raise LlamaServerError(
                    f"llama-server not ready after {self.ready_timeout_s:.0f}s; "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM its process group (the server and anything it started), SIGKILL the group
        after 10 s."""
        if self._record is not None:
            terminate(self._record, _STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
