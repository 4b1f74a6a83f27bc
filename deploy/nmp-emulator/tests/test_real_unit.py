"""The real backend's pure parts: its settings, the server's command line, which requests a real
server answers, and what the proxy changes in a body or an answer. No process, no model."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from flywheel_nmp_emulator.config import RealBackend, Settings
from flywheel_nmp_emulator.real.command import llama_command
from flywheel_nmp_emulator.real.proxy import rename_model, upstream_body
from flywheel_nmp_emulator.real.routing import RealRoute, real_route
from flywheel_nmp_emulator.state.records import CustomizedModel, Deployment

pytestmark = pytest.mark.unit

REAL = "qwen/qwen2.5-coder-0.5b-instruct"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    return binary, model


def test_the_real_backend_is_off_by_default() -> None:
    settings = Settings()
    assert settings.real.enabled is False
    assert settings.real_run_dir() is None


def test_it_is_turned_on_from_the_environment(
    files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary, model = files
    monkeypatch.setenv("NMP_EMULATOR_REAL__ENABLED", "true")
    monkeypatch.setenv("NMP_EMULATOR_REAL__LLAMA_SERVER", str(binary))
    monkeypatch.setenv("NMP_EMULATOR_REAL__MODEL_PATH", str(model))
    monkeypatch.setenv("NMP_EMULATOR_REAL__THREADS", "2")
    monkeypatch.setenv("NMP_EMULATOR_STATE_FILE", str(tmp_path / "state.json"))
    settings = Settings()
    assert settings.real.enabled
    assert (settings.real.llama_server, settings.real.model_path) == (binary, model)
    assert settings.real.model_id == REAL
    assert settings.real.threads == 2
    # Logs and pid files beside the state, where the next emulator looks for survivors.
    assert settings.real_run_dir() == tmp_path / "state.llama"


def test_enabled_without_paths_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=re.escape("needs real.llama_server and real.model_path")
    ):
        RealBackend(enabled=True)


def test_a_binary_that_is_not_executable_is_refused(files: tuple[Path, Path]) -> None:
    binary, model = files
    binary.chmod(0o644)
    with pytest.raises(ValidationError, match="not an executable file"):
        RealBackend(enabled=True, llama_server=binary, model_path=model)


def test_a_missing_model_file_is_refused(files: tuple[Path, Path], tmp_path: Path) -> None:
    binary, _ = files
    with pytest.raises(ValidationError, match="is not a file"):
        RealBackend(enabled=True, llama_server=binary, model_path=tmp_path / "missing.gguf")


def test_disabled_paths_are_not_checked(tmp_path: Path) -> None:
    RealBackend(llama_server=tmp_path / "nothing", model_path=tmp_path / "nothing")


@pytest.mark.parametrize(
    "field", [{"parallel": 0}, {"ctx_per_slot": 256}, {"max_tokens": 0}, {"threads": 0}]
)
def test_out_of_range_sizes_are_refused(field: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        RealBackend(**field)


def test_an_always_served_model_cannot_be_the_real_one(files: tuple[Path, Path]) -> None:
    binary, model = files
    real = RealBackend(enabled=True, llama_server=binary, model_path=model, model_id="j/judge")
    with pytest.raises(ValidationError, match="served without a deployment"):
        Settings(real=real, judge_model="j/judge")


def test_the_command_serves_the_alias_with_its_slots_and_never_shows_the_key(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    binary, model = files
    settings = RealBackend(
        enabled=True, llama_server=binary, model_path=model, parallel=3, ctx_per_slot=1024
    )
    cmd = llama_command(settings, port=4321, key_file=tmp_path / "k")
    assert cmd[0] == str(binary)

    def value(flag: str) -> str:
        return cmd[cmd.index(flag) + 1]

    assert value("--model") == str(model)
    assert value("--alias") == REAL
    assert value("--host") == "127.0.0.1"
    assert value("--port") == "4321"
    assert value("--parallel") == "3"
    assert value("--ctx-size") == "3072"
    assert value("--api-key-file") == str(tmp_path / "k")
    assert "--jinja" in cmd
    assert "--lora" not in cmd
    assert "--lora-init-without-apply" not in cmd


def test_adapters_are_loaded_unapplied_in_order(files: tuple[Path, Path], tmp_path: Path) -> None:
    binary, model = files
    settings = RealBackend(enabled=True, llama_server=binary, model_path=model)
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    cmd = llama_command(settings, port=1, key_file=tmp_path / "k", adapters=[a, b])
    assert "--lora-init-without-apply" in cmd
    assert [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--lora"] == [str(a), str(b)]


# -- routing -----------------------------------------------------------------------------------


def _deployment(name: str, model: str, status: str) -> Deployment:
    return Deployment.model_validate(
        {
            "name": name,
            "namespace": "dfwbp",
            "model": model,
            "gpus": 1,
            "config": {},
            "status": status,
            "created_at": 0.0,
        }
    )


def _customized(model_id: str, base: str, lora: str | None) -> CustomizedModel:
    return CustomizedModel(
        id=model_id,
        namespace="dfwbp",
        name=model_id.split("/")[-1],
        base_model=base,
        job_id="job",
        created_at=0.0,
        trained_at=1.0,
        lora_gguf=lora,
    )


DEPLOYMENTS = {
    "dfwbp/b": _deployment("b", REAL, "ready"),
    "dfwbp/a": _deployment("a", REAL, "pending"),
    "dfwbp/llama": _deployment("llama", "meta/llama-3.2-1b-instruct", "ready"),
}
MODELS = {
    "dfwbp/qwen-ft": _customized("dfwbp/qwen-ft", REAL, "/adapters/qwen-ft.gguf"),
    "dfwbp/qwen-heuristic": _customized("dfwbp/qwen-heuristic", REAL, None),
    "dfwbp/llama-ft": _customized("dfwbp/llama-ft", "meta/llama-3.2-1b-instruct", None),
}


@pytest.mark.parametrize(
    ("model_id", "route"),
    [
        # The real model goes to a ready deployment of it, never to one still starting.
        (REAL, RealRoute("dfwbp/b", None)),
        # Its customized model with a real adapter: the same server, that adapter applied.
        ("dfwbp/qwen-ft", RealRoute("dfwbp/b", "dfwbp/qwen-ft")),
        # No real adapter yet: the heuristic adapter answers.
        ("dfwbp/qwen-heuristic", None),
        # Every other model stays heuristic.
        ("meta/llama-3.2-1b-instruct", None),
        ("dfwbp/llama-ft", None),
        ("meta/llama-3.3-70b-instruct", None),
    ],
)
def test_which_requests_a_real_server_answers(model_id: str, route: RealRoute | None) -> None:
    assert real_route(model_id, REAL, DEPLOYMENTS, MODELS) == route


def test_without_a_ready_deployment_nothing_is_routed() -> None:
    pending = {"dfwbp/a": _deployment("a", REAL, "pending")}
    assert real_route(REAL, REAL, pending, MODELS) is None
    assert real_route("dfwbp/qwen-ft", REAL, pending, MODELS) is None


def test_several_ready_deployments_route_to_one() -> None:
    both = {**DEPLOYMENTS, "dfwbp/a": _deployment("a", REAL, "ready")}
    assert real_route(REAL, REAL, both, MODELS) == RealRoute("dfwbp/a", None)


# -- the proxy's edits -------------------------------------------------------------------------


def test_the_body_applies_only_the_routed_adapter() -> None:
    body = {"model": REAL, "messages": [], "tools": [{"type": "function"}], "lora": [{"id": 5}]}
    assert upstream_body(body, None) == {"model": REAL, "messages": [], "tools": body["tools"]}
    assert upstream_body(body, 1)["lora"] == [{"id": 1, "scale": 1.0}]


def test_answers_are_renamed_to_the_customized_model() -> None:
    whole = orjson.dumps({"model": REAL, "choices": []})
    assert orjson.loads(rename_model(whole, "dfwbp/ft"))["model"] == "dfwbp/ft"
    line = b'data: {"model": "' + REAL.encode() + b'", "choices": []}'
    renamed = rename_model(line, "dfwbp/ft")
    assert renamed.startswith(b"data: ")
    assert orjson.loads(renamed[6:])["model"] == "dfwbp/ft"
    for untouched in (b"data: [DONE]", b"", b": ping", b"data: {not json"):
        assert rename_model(untouched, "dfwbp/ft") == untouched
