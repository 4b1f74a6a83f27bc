"""The real model: its installation's pure parts (part order, hash checks, reuse, pins, build
key, server flags, the driver's result rows) and the real server itself.

The integration tests install on first use, like the stack's servers: 514 MB of wheels and a
llama-server build of five to twelve minutes on two cores, once per cache (`.cache/`); the
end-to-end test of an external candidate (tests/e2e/test_external_candidate.py) shares it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel_contracts.events import EvalDone, EvalError, EvalErrorKind, MetricScore, UsageStats
from flywheel_contracts.run_config import EvalType
from flywheel_localstack import components
from flywheel_localstack.components import NmpEmulator
from flywheel_localstack.config import StackSettings
from flywheel_localstack.installers import InstallError
from flywheel_localstack.real_model import (
    SERVED_MODEL,
    LlamaServer,
    ModelIntegrityError,
    RealModel,
    emulator_env,
    install,
)
from flywheel_localstack.real_model.install import (
    REQUIREMENTS,
    assemble_model,
    build_key,
    ensure_model,
    part_files,
    verified,
)
from flywheel_localstack.real_model.run import (
    LENIENT,
    NMP_CANDIDATE,
    STRICT,
    evaluator_settings,
    result_rows,
    run_overrides,
)
from flywheel_nmp_emulator.config import Settings as EmulatorSettings

PACKAGES = ("part_a", "part_b", "part_c")


def _site(tmp_path: Path, contents: dict[str, bytes]) -> Path:
    """A fake site-packages whose packages hold one data/*.bin each; file names are chosen so
    that sorting them by name would give the wrong order."""
    site = tmp_path / "site-packages"
    for index, (package, data) in enumerate(contents.items()):
        folder = site / package / "data"
        folder.mkdir(parents=True)
        (folder / f"{9 - index:02d}.bin").write_bytes(data)
    return site


def _expected(data: bytes) -> tuple[str, int]:
    return hashlib.sha256(data).hexdigest(), len(data)


@pytest.mark.unit
def test_parts_are_joined_in_package_order_not_file_name_order(tmp_path: Path) -> None:
    site = _site(tmp_path, {"part_a": b"first-", "part_b": b"second-", "part_c": b"third"})
    sha256, size = _expected(b"first-second-third")

    model = ensure_model(part_files(site, PACKAGES), tmp_path / "m.gguf", sha256, size)

    assert model.read_bytes() == b"first-second-third"
    assert verified(model, sha256)


@pytest.mark.unit
def test_a_missing_or_doubled_part_is_refused(tmp_path: Path) -> None:
    site = _site(tmp_path, {"part_a": b"a", "part_c": b"c"})
    with pytest.raises(InstallError, match=r"part_b: expected one data/\*\.bin"):
        part_files(site, PACKAGES)

    (site / "part_a" / "data" / "extra.bin").write_bytes(b"x")
    with pytest.raises(InstallError, match=r"part_a: expected one data/\*\.bin .* found 2"):
        part_files(site, ("part_a",))


@pytest.mark.unit
def test_a_model_that_is_not_the_published_one_is_refused_and_deleted(tmp_path: Path) -> None:
    site = _site(tmp_path, {"part_a": b"tampered", "part_b": b"bytes"})
    sha256, size = _expected(b"published-bytes")
    target = tmp_path / "models" / "m.gguf"
    target.parent.mkdir()

    with pytest.raises(
        ModelIntegrityError, match=f"not the published 15 bytes with sha256 {sha256}"
    ):
        assemble_model(part_files(site, PACKAGES[:2]), target, sha256, size)

    assert list(target.parent.iterdir()) == []  # neither the model, a partial file nor a stamp


@pytest.mark.unit
def test_a_verified_model_is_reused_without_its_parts(tmp_path: Path) -> None:
    site = _site(tmp_path, {"part_a": b"model"})
    sha256, size = _expected(b"model")
    parts = part_files(site, ("part_a",))
    target = ensure_model(parts, tmp_path / "m.gguf", sha256, size)
    parts[0].unlink()

    assert ensure_model(parts, target, sha256, size) == target  # the stamp spares the rehash
    assert json.loads(target.with_name("m.gguf.verified").read_text())["size"] == size


@pytest.mark.unit
def test_a_touched_model_is_hashed_again_and_kept_when_still_right(tmp_path: Path) -> None:
    site = _site(tmp_path, {"part_a": b"model"})
    sha256, size = _expected(b"model")
    parts = part_files(site, ("part_a",))
    target = ensure_model(parts, tmp_path / "m.gguf", sha256, size)
    os.utime(target, ns=(1, 1))
    assert not verified(target, sha256)
    parts[0].unlink()  # a reassembly would fail: only a rehash can accept it

    assert ensure_model(parts, target, sha256, size) == target
    assert verified(target, sha256)


@pytest.mark.unit
def test_a_replaced_model_is_assembled_again(tmp_path: Path) -> None:
    site = _site(tmp_path, {"part_a": b"model"})
    sha256, size = _expected(b"model")
    target = ensure_model(part_files(site, ("part_a",)), tmp_path / "m.gguf", sha256, size)
    target.write_bytes(b"other")

    messages: list[str] = []
    ensure_model(part_files(site, ("part_a",)), target, sha256, size, messages.append)

    assert target.read_bytes() == b"model"
    assert "is not the published model" in messages[0]


@pytest.mark.unit
def test_every_requirement_is_pinned_and_hash_checked() -> None:
    lines = [line for line in REQUIREMENTS.read_text().splitlines() if line and line[0] != "#"]
    assert len(lines) == 7  # six model parts and llama.cpp's source
    for line in lines:
        assert re.fullmatch(r"[a-z0-9-]+==[0-9.]+ --hash=sha256:[0-9a-f]{64}", line), line


@pytest.mark.unit
def test_a_build_is_kept_per_cpu() -> None:
    assert build_key("avx2 fma") == build_key("avx2 fma")
    assert build_key("avx2 fma") != build_key("avx2 avx_vnni fma")


@pytest.mark.unit
def test_the_server_gets_its_slots_and_the_key_file_never_the_key(tmp_path: Path) -> None:
    model = RealModel(server=Path("/opt/llama-server"), model=Path("/m.gguf"))
    server = LlamaServer(model, api_key="s3cret", parallel=3, ctx_per_slot=4096, threads=2)

    cmd = server.command(8081, tmp_path / "key")

    def value(flag: str) -> str:
        return cmd[cmd.index(flag) + 1]

    assert cmd[0] == "/opt/llama-server"
    assert "--jinja" in cmd and "--no-kv-unified" in cmd
    assert value("--parallel") == "3" and value("--ctx-size") == str(3 * 4096)
    assert value("--alias") == SERVED_MODEL and value("--host") == "127.0.0.1"
    assert value("--port") == "8081" and value("--threads") == "2"
    assert value("--api-key-file") == str(tmp_path / "key")
    assert "s3cret" not in " ".join(cmd)


@pytest.mark.unit
def test_the_emulator_settings_point_at_the_installed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary, gguf = tmp_path / "llama-server", tmp_path / "model.gguf"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    gguf.write_bytes(b"GGUF")
    for name, value in emulator_env(RealModel(server=binary, model=gguf)).items():
        monkeypatch.setenv(name, value)

    real = EmulatorSettings().real

    assert real.enabled and real.model_id == SERVED_MODEL
    assert (real.llama_server, real.model_path) == (binary, gguf)


@pytest.mark.unit
def test_the_stack_turns_the_real_backend_on_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = RealModel(server=tmp_path / "llama-server", model=tmp_path / "m.gguf")
    monkeypatch.setattr(components, "install", lambda cache_dir: installed)
    settings = StackSettings(state_dir=tmp_path / "stack")

    assert "NMP_EMULATOR_REAL__ENABLED" not in NmpEmulator(settings).env()
    env = NmpEmulator(StackSettings(state_dir=tmp_path / "stack", nmp_real_model=True)).env()
    assert env["NMP_EMULATOR_REAL__ENABLED"] == "true"
    assert env["NMP_EMULATOR_REAL__LLAMA_SERVER"] == str(installed.server)


@pytest.mark.unit
def test_the_run_names_the_key_the_evaluator_holds_for_that_url() -> None:
    overrides = run_overrides("http://127.0.0.1:5000/v1", eval_size=30)

    assert overrides.candidates is not None
    nmp, real = overrides.candidates
    assert nmp.model_name == NMP_CANDIDATE and nmp.endpoint is None
    assert real.model_name == SERVED_MODEL and real.endpoint is not None
    assert real.endpoint.api_key == "local" and real.endpoint.concurrency == 2
    assert overrides.eval_types == (EvalType.BASE, EvalType.ICL)
    assert overrides.tool_schema_compat is True
    assert evaluator_settings("k", "http://127.0.0.1:5000/v1", 128) == {
        "endpoint_keys__local__key": "k",
        "endpoint_keys__local__base_url": "http://127.0.0.1:5000/v1",
        "chat__max_tokens": 128,
    }


def _score(name: str, value: float) -> MetricScore:
    return MetricScore(name=name, value=value, n=30, failed=0, ci_low=value / 2, ci_high=value)


@pytest.mark.unit
def test_result_rows_keep_the_last_eval_done_of_each_evaluation() -> None:
    usage = UsageStats(
        requests=30,
        latency_p50_ms=900.0,
        latency_p95_ms=4000.0,
        prompt_tokens_per_request=2000.0,
        completion_tokens_per_request=30.0,
        completion_tokens_per_second=21.5,
    )
    first = EvalDone(
        candidate_model=SERVED_MODEL,
        eval_type=EvalType.BASE,
        job_id=None,
        target_model=SERVED_MODEL,
        error=EvalError(kind=EvalErrorKind.TIMED_OUT, message="slow"),
    )
    again = first.model_copy(
        update={
            "error": None,
            "scores": (_score(STRICT, 0.0), _score(LENIENT, 0.6)),
            "usage": usage,
        }
    )

    (row,) = result_rows([first, again], leaderboard=None)

    assert row.error is None and row.tokens_per_second == 21.5
    assert row.strict is not None and row.strict.value == 0.0
    assert row.lenient is not None and row.lenient.value == 0.6
    assert row.cost_per_1k_requests_usd is None


# -- the real server ---------------------------------------------------------------------------

# The first test pays for the install in its fixture: up to twelve minutes on a busy machine.
first_use = pytest.mark.timeout(1800)
KEY = "test-key-not-secret"
ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up the current status of an order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "pattern": "^ORD-[0-9]{6}$"}},
            "required": ["order_id"],
        },
    },
}


@pytest.fixture(scope="module")
def real_model() -> RealModel:
    return install()


@pytest.fixture(scope="module")
def served(
    real_model: RealModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    with LlamaServer(real_model, api_key=KEY, log_dir=tmp_path_factory.mktemp("llama")) as server:
        yield server


@pytest.mark.integration
@first_use
def test_the_real_model_answers_a_tool_calling_question(served: LlamaServer) -> None:
    response = httpx.post(
        f"{served.base_url}/chat/completions",
        headers=served.headers(),
        json={
            "model": served.model_id,
            "messages": [{"role": "user", "content": "Where is my order ORD-482913?"}],
            "tools": [ORDER_TOOL],
            "temperature": 0,
            "max_tokens": 128,
        },
        timeout=120,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    message = body["choices"][0]["message"]
    # This model writes its call as JSON in the content more often than in `tool_calls` (it
    # seldom opens `<tool_call>`, which llama.cpp's parser waits for): either names the tool.
    call = json.dumps(message.get("tool_calls") or message.get("content"))
    assert "get_order_status" in call and "ORD-482913" in call, message
    assert body["usage"]["completion_tokens"] > 0
    assert served.model_id == SERVED_MODEL


@pytest.mark.integration
@first_use
def test_the_real_server_refuses_requests_without_the_key(served: LlamaServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(f"{served.base_url}/models", headers=headers, timeout=10)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.integration
@first_use
def test_the_real_server_stops_with_its_block(real_model: RealModel, tmp_path: Path) -> None:
    with LlamaServer(real_model, log_dir=tmp_path, parallel=1, ctx_per_slot=2048) as server:
        assert httpx.get(f"{server.base_url}/models", timeout=10).status_code == 200
        pid = server.pid
    assert pid is not None and not Path(f"/proc/{pid}").exists()
