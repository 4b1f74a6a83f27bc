"""Real training's pure parts: the chat format of the examples (what the server renders and
parses), the capped plan, both command lines and the progress reader. No process, no torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flywheel_nmp_emulator.config import RealBackend
from flywheel_nmp_emulator.real.training.chat_format import (
    completion_text,
    render_call,
    served_tools,
    training_example,
)
from flywheel_nmp_emulator.real.training.command import (
    TRAINER_SCRIPT,
    JobFiles,
    convert_command,
    cpu_has_bf16,
    trainer_command,
    trainer_config,
)
from flywheel_nmp_emulator.real.training.plan import training_plan
from flywheel_nmp_emulator.real.training.progress import ProgressReader
from flywheel_nmp_emulator.real.training.train_lora import whole_tokens

pytestmark = pytest.mark.unit

TOOLS = [{"type": "function", "function": {"name": "get_order_status", "parameters": {}}}]


def _call(name: str, arguments: object) -> dict[str, object]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_call_is_written_as_qwens_template_writes_it() -> None:
    # The template: '<tool_call>\n{"name": "' + name + '", "arguments": ' + args|tojson + '}\n</tool_call>'
    assert render_call("refund", {"amount": 12.5, "note": "café"}) == (
        '<tool_call>\n{"name": "refund", "arguments": {"amount": 12.5, "note": "café"}}\n'
        "</tool_call>"
    )


def test_the_answer_is_content_then_one_call_a_line() -> None:
    answer = {
        "role": "assistant",
        "content": "",
        "tool_calls": [_call("a", {"x": 1}), _call("b", '{"y": "z"}')],
    }
    assert completion_text(answer) == (
        '<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "b", "arguments": {"y": "z"}}\n</tool_call>'
    )
    with_text = {**answer, "content": "Sure.", "tool_calls": [_call("a", {})]}
    assert completion_text(with_text) == (
        'Sure.\n<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>'
    )


def test_a_training_record_becomes_request_tools_and_answer() -> None:
    request: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "where is ORD-123456?"},
    ]
    answer = {
        "role": "assistant",
        "content": "",
        "tool_calls": [_call("get_order_status", {"order_id": "ORD-123456"})],
    }
    example = training_example({"messages": [*request, answer], "tools": TOOLS})
    assert example is not None
    assert example.messages == request
    assert example.tools == [
        {
            "type": "function",
            "function": {"name": "get_order_status", "description": "", "parameters": {}},
        }
    ]
    assert example.completion.startswith('<tool_call>\n{"name": "get_order_status"')
    assert json.loads(json.dumps(example.to_json()))["completion"] == example.completion


def test_tools_are_written_in_the_order_llama_server_rebuilds_them() -> None:
    stored = {
        "function": {
            "parameters": {"type": "object", "properties": {"b": {}, "a": {}}},
            "name": "refund",
            "description": "Open a refund.",
        },
        "type": "function",
    }
    other = {"type": "retrieval", "index": "faq"}
    (served, kept) = served_tools([stored, other])
    assert json.dumps(served) == json.dumps(
        {
            "type": "function",
            "function": {
                "name": "refund",
                "description": "Open a refund.",
                # The parameters' own keys stay as sent: llama-server keeps their order.
                "parameters": {"type": "object", "properties": {"b": {}, "a": {}}},
            },
        }
    )
    assert kept == other
    bare = served_tools([{"type": "function", "function": {"name": "ping"}}])
    assert bare[0]["function"] == {"name": "ping", "description": "", "parameters": {}}


def test_the_trainer_keeps_whole_the_tokens_llama_cpp_keeps_whole() -> None:
    # GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    tokens = ["a", "<unk>", "<|im_end|>", "<tool_call>", "<|unused|>", "<0x0A>"]
    assert whole_tokens(tokens, [1, 2, 3, 4, 5, 6]) == ["<unk>", "<|im_end|>", "<tool_call>"]
    with pytest.raises(ValueError, match="shorter"):
        whole_tokens(tokens, [1, 2])


def test_past_calls_get_object_arguments_for_the_template() -> None:
    history = {"role": "assistant", "content": "", "tool_calls": [_call("a", '{"x": 1}')]}
    record = {
        "messages": [
            {"role": "user", "content": "q"},
            history,
            {"role": "tool", "content": "ok"},
            {"role": "assistant", "content": "done"},
        ]
    }
    example = training_example(record)
    assert example is not None and example.tools is None
    assert example.messages[1]["tool_calls"][0]["function"]["arguments"] == {"x": 1}
    assert example.completion == "done"


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"messages": [{"role": "user", "content": "q"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "r"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
    ],
)
def test_records_with_nothing_to_learn_are_left_out(record: dict[str, object]) -> None:
    assert training_example(record) is None


def test_the_plan_follows_the_job_within_the_caps() -> None:
    hyper = {
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 0.0002,
        "lora": {"adapter_dim": 32, "adapter_dropout": 0.1, "alpha": 64},
    }
    plan = training_plan(hyper, 200, max_steps=60, max_batch_size=1)
    assert (plan.batch_size, plan.steps_per_epoch, plan.requested_steps) == (1, 200, 400)
    assert plan.total_steps == 60 and plan.capped
    assert (plan.learning_rate, plan.lora_rank, plan.lora_alpha) == (0.0002, 32, 64)
    assert plan.lora_dropout == 0.1
    assert "capped by the laptop profile" in plan.describe()
    roomy = training_plan(hyper, 200, max_steps=1000, max_batch_size=16)
    assert (roomy.batch_size, roomy.total_steps, roomy.capped) == (16, 26, False)


def test_a_plan_without_hyperparameters_takes_nmps_defaults() -> None:
    plan = training_plan({}, 3, max_steps=60, max_batch_size=4)
    assert (plan.epochs, plan.batch_size, plan.total_steps) == (1, 4, 1)
    assert (plan.lora_rank, plan.lora_alpha, plan.lora_dropout) == (8, 16, 0.0)
    with pytest.raises(ValueError, match="no usable training record"):
        training_plan({}, 0, max_steps=60, max_batch_size=1)


@pytest.fixture
def real(tmp_path: Path) -> RealBackend:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    source = tmp_path / "llama.cpp"
    source.mkdir()
    (source / "convert_lora_to_gguf.py").write_text("")
    return RealBackend(
        enabled=True,
        llama_server=binary,
        model_path=model,
        trainer_python=binary,
        llama_cpp_source=source,
        train_threads=3,
    )


def test_training_needs_the_converter(real: RealBackend, tmp_path: Path) -> None:
    assert real.trains
    assert not RealBackend().trains
    with pytest.raises(ValidationError, match=r"convert_lora_to_gguf\.py"):
        RealBackend.model_validate({**real.model_dump(), "llama_cpp_source": tmp_path})
    with pytest.raises(ValidationError, match="not executable"):
        RealBackend.model_validate({**real.model_dump(), "trainer_python": tmp_path / "nope"})


def test_the_commands_and_the_trainers_config(real: RealBackend, tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "job")
    assert trainer_command(real, files) == [
        str(real.trainer_python),
        "-u",
        str(TRAINER_SCRIPT),
        str(files.config),
    ]
    assert TRAINER_SCRIPT.is_file()
    convert = convert_command(real, files)
    assert convert[:2] == [str(real.trainer_python), str(real.convert_script())]
    assert convert[convert.index("--base") + 1] == str(files.base_config)
    assert convert[convert.index("--outfile") + 1] == str(files.gguf)
    assert convert[-1] == str(files.adapter)
    plan = training_plan({"batch_size": 4}, 10, max_steps=2, max_batch_size=1)
    config = trainer_config(real, plan, files, seed=7)
    assert config["model_gguf"] == str(real.model_path)
    assert (config["total_steps"], config["batch_size"], config["threads"]) == (2, 1, 3)
    assert config["progress"] == str(files.progress) and config["seed"] == 7
    assert config["bf16"] == cpu_has_bf16()
    forced = trainer_config(real.model_copy(update={"train_bf16": False}), plan, files, seed=7)
    assert forced["bf16"] is False


def test_bf16_only_where_the_cpu_has_it() -> None:
    assert cpu_has_bf16("processor: 0\nflags\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_bf16("flags : sse amx_bf16 amx_tile")
    assert not cpu_has_bf16("flags : sse avx2 avx512f")
    assert not cpu_has_bf16("")


def test_progress_is_read_as_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    reader = ProgressReader(path)
    assert reader.read() == []
    step = {"kind": "step", "step": 1, "epoch": 0.5, "loss": 1.25, "seconds": 3.0}
    path.write_text(json.dumps({"kind": "plan", "total_steps": 2}) + "\n" + json.dumps(step))
    # The step's line has no newline yet: it may still be being written.
    assert reader.read() == []
    assert reader.progress.plan == {"kind": "plan", "total_steps": 2}
    with path.open("a") as out:
        out.write("\nnot json\n" + json.dumps({**step, "step": 2, "loss": 0.5}) + "\n")
    steps = reader.read()
    assert [(s.step, s.loss) for s in steps] == [(1, 1.25), (2, 0.5)]
    with path.open("a") as out:
        out.write(json.dumps({"kind": "saved"}) + "\n")
    assert reader.read() == [] and reader.progress.saved


def test_required_tool_choice_reaches_llama_server_as_auto() -> None:
    from flywheel_nmp_emulator.real.proxy import upstream_body

    body = {"model": "m", "messages": [], "tool_choice": "required"}
    assert upstream_body(body, None, required_as_auto=True)["tool_choice"] == "auto"
    assert upstream_body(body, None)["tool_choice"] == "required"
    named = {**body, "tool_choice": {"type": "function", "function": {"name": "f"}}}
    assert upstream_body(named, None, required_as_auto=True) == named
    assert RealBackend().tool_choice_required_as_auto
