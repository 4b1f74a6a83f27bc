"""What is trained is what is served: the real trainer renders and tokenizes every prompt exactly
as llama-server does for the same request (opt-in with the real trainer: `make
test-real-training`; it needs the trainer's venv and the real model, installed on first use).

A prompt that differs in one token is a prompt the adapter was never trained on. Two such
differences were found this way: transformers split Qwen's `<tool_call>` tags in the template's
instructions into ordinary pieces where llama.cpp keeps them whole, and the training file's tools
keep the stored (sorted) key order where llama-server rebuilds each tool in an order of its own.
The adapter trained on those prompts wrote its calls without the tags when served.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_contracts.traffic import ROUTER, TrafficConfig, generate_records
from flywheel_localstack.real_model import install
from flywheel_localstack.real_model.server import LlamaServer
from flywheel_localstack.real_model.trainer import install_trainer
from flywheel_nmp_emulator.real.training.chat_format import training_example
from flywheel_nmp_emulator.real.training.command import TRAINER_SCRIPT
from flywheel_nmp_emulator.testing import tool_call_records, training_record

pytestmark = [pytest.mark.real_training, pytest.mark.timeout(900)]

# Run by the trainer venv's Python: the trainer's own tokenizer and prompt, one line each.
_TOKENIZE = """
import importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("train_lora", sys.argv[1])
trainer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trainer)
tokenizer = trainer.load_tokenizer(Path(sys.argv[2]))
end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
for line in Path(sys.argv[3]).read_text().splitlines():
    example = json.loads(line)
    ids, answer = trainer.tokenized(tokenizer, example, end_id)
    print(json.dumps({"prompt": trainer.prompt_text(tokenizer, example), "ids": ids[:-answer],
                      "answer": ids[-answer:]}))
"""


def _records() -> list[dict[str, Any]]:
    """Router records, single and multi-turn (past calls included), as Elasticsearch gives
    them back: keys sorted. The evaluator sends their requests, the trainer learns from them."""
    records = tool_call_records(
        list(generate_records(400, seed=11, config=TrafficConfig(workloads=(ROUTER,))))
    )
    multi = [r for r in records if len(r["request"]["messages"]) > 2][:8]
    single = [r for r in records if len(r["request"]["messages"]) <= 2][:4]
    assert len(multi) == 8 and single, "the traffic has no multi-turn records"
    stored: list[dict[str, Any]] = json.loads(json.dumps([*multi, *single], sort_keys=True))
    return stored


def test_the_trainer_tokenizes_each_prompt_as_llama_server_does(tmp_path: Path) -> None:
    model = install()
    records = _records()
    examples = tmp_path / "examples.jsonl"
    with examples.open("w") as out:
        for record in records:
            example = training_example(training_record(record))
            assert example is not None
            out.write(json.dumps(example.to_json()) + "\n")
    trained = [
        json.loads(line)
        for line in subprocess.run(
            [
                str(install_trainer()),
                "-c",
                _TOKENIZE,
                str(TRAINER_SCRIPT),
                str(model.model),
                str(examples),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout.splitlines()
    ]
    assert len(trained) == len(records)

    with LlamaServer(model, log_dir=tmp_path, parallel=1, ctx_per_slot=8192) as server:
        for record, mine in zip(records, trained, strict=True):
            request = {
                "messages": record["request"]["messages"],
                "tools": record["request"]["tools"],
            }
            served = httpx.post(f"{server.url}/apply-template", json=request, timeout=60)
            assert served.status_code == 200, served.text
            prompt = served.json()["prompt"]
            assert mine["prompt"] == prompt
            tokens = httpx.post(
                f"{server.url}/tokenize",
                json={"content": prompt, "add_special": False, "parse_special": True},
                timeout=60,
            ).json()["tokens"]
            assert mine["ids"] == tokens

    # The answer's tags stay ordinary text, as the trainer means them (chat_format.py).
    tool_call_token = 151657
    assert all(tool_call_token not in mine["answer"] for mine in trained)
    assert any(tool_call_token in mine["ids"] for mine in trained)
