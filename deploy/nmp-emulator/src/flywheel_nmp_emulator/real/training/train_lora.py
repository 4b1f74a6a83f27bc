"""The LoRA trainer: run as a script by the trainer venv's Python, never imported by the emulator
(it needs PyTorch, transformers and peft, which only that venv has).

`python train_lora.py CONFIG.json`: loads the GGUF base model (transformers dequantizes it),
tokenizes the examples file (one `TrainingExample.to_json()` a line) with the model's own chat
template, trains a LoRA adapter for exactly `total_steps` optimizer steps, and saves the adapter
(peft format) and the base model's config (what convert_lora_to_gguf.py reads). It reports on
the progress file, one JSON object a line, flushed as it goes: `plan`, one `step` per step
(loss, epoch, seconds), `saved`. Errors go to stderr (the job's log) with a non-zero exit.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, TextIO

# Every linear layer of a Qwen2 block: attention and MLP.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
IGNORE = -100
# GGUF token types llama.cpp matches whole wherever their text appears in a prompt (its special
# token partition): unknown (2), control (3) and user-defined (4).
WHOLE_TOKEN_TYPES = frozenset({2, 3, 4})


def emit(out: TextIO, kind: str, **fields: Any) -> None:
    out.write(json.dumps({"kind": kind, **fields}) + "\n")
    out.flush()


def whole_tokens(tokens: list[str], types: list[int]) -> list[str]:
    """The tokens llama.cpp keeps whole in a prompt, from the GGUF's token list and types."""
    return [token for token, kind in zip(tokens, types, strict=True) if kind in WHOLE_TOKEN_TYPES]


def gguf_whole_tokens(gguf: Path) -> list[str]:
    from gguf import GGUFReader  # type: ignore[import-not-found]

    reader = GGUFReader(str(gguf))
    tokens = reader.fields["tokenizer.ggml.tokens"]
    types = reader.fields["tokenizer.ggml.token_type"]
    return whole_tokens(
        [bytes(tokens.parts[i]).decode("utf-8", "replace") for i in tokens.data],
        [int(types.parts[i][0]) for i in types.data],
    )


def load_tokenizer(gguf: Path) -> Any:
    """The model's tokenizer, splitting a prompt as llama-server does.

    transformers builds it from the GGUF with only the control tokens as special. llama.cpp
    also keeps the user-defined ones whole, which for Qwen2.5 are `<tool_call>` and
    `</tool_call>`: they appear in the template's own instructions, so a prompt split into
    ordinary pieces here (`<`, `tool`, `_call`, `>`) would train the model on prompts it is
    never served (measured: the served adapter then wrote its calls without the tags). Both are
    already in the vocabulary, so registering them as special keeps every id."""
    from transformers import AutoTokenizer  # type: ignore[import-not-found]

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    size = len(tokenizer)
    known = set(tokenizer.all_special_tokens)
    missing = [token for token in gguf_whole_tokens(gguf) if token not in known]
    tokenizer.add_special_tokens(
        {"additional_special_tokens": missing}, replace_additional_special_tokens=False
    )
    if len(tokenizer) != size:
        raise ValueError(f"registering {missing} as special tokens added new ids")
    return tokenizer


def prompt_text(tokenizer: Any, example: dict[str, Any]) -> str:
    return str(
        tokenizer.apply_chat_template(
            example["messages"], tools=example["tools"], add_generation_prompt=True, tokenize=False
        )
    )


def tokenized(tokenizer: Any, example: dict[str, Any], end_id: int) -> tuple[list[int], int]:
    """(prompt + answer + end-of-turn ids, how many of them are the answer's)."""
    # The prompt's special tokens are kept whole, as llama-server keeps them; the answer's
    # tags are spelled as ordinary text (chat_format.py says why).
    prompt_ids = tokenizer(prompt_text(tokenizer, example), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(
        example["completion"], add_special_tokens=False, split_special_tokens=True
    )["input_ids"]
    answer_ids = [*answer_ids, end_id]
    return [*prompt_ids, *answer_ids], len(answer_ids)


def batch_tensors(torch: Any, rows: list[tuple[list[int], int]], pad_id: int) -> dict[str, Any]:
    """Left-padded: every answer ends at the last position, so only the last `keep` positions
    need logits (the vocabulary projection of the prompt is most of a step's cost otherwise)."""
    width = max(len(ids) for ids, _ in rows)
    keep = max(answer for _, answer in rows) + 1
    input_ids, mask, labels = [], [], []
    for ids, answer in rows:
        pad = width - len(ids)
        input_ids.append([pad_id] * pad + ids)
        mask.append([0] * pad + [1] * len(ids))
        row_labels = [IGNORE] * (width - answer) + ids[-answer:]
        labels.append(row_labels[width - keep + 1 :])
    ids_t = torch.tensor(input_ids)
    mask_t = torch.tensor(mask)
    # Positions count real tokens only, so padding does not shift the rotary embeddings.
    positions = (mask_t.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": ids_t,
        "attention_mask": mask_t,
        "position_ids": positions,
        "keep": keep,
        "labels": torch.tensor(labels),
    }


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    with Path(config["progress"]).open("a") as progress:
        return train(config, progress)


def train(config: dict[str, Any], progress: TextIO) -> int:
    # Imported here: the emulator's tests import this module without them.
    import torch  # type: ignore[import-not-found]
    from peft import LoraConfig, get_peft_model  # type: ignore[import-not-found]
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(int(config["seed"]))
    rng = random.Random(int(config["seed"]))
    gguf = Path(config["model_gguf"])
    out_dir = Path(config["output_dir"])
    started = time.monotonic()

    tokenizer = load_tokenizer(gguf)
    # fp32 weights: with bf16 weights every op outside the matmuls runs in bf16 too, which is
    # slower on a CPU (measured: 76 s against 27 s a step), and less exact.
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    max_len = int(config["max_seq_length"])
    rows = []
    skipped = 0
    with Path(config["examples"]).open() as lines:
        for line in lines:
            if line.strip():
                row = tokenized(tokenizer, json.loads(line), end_id)
                if len(row[0]) <= max_len:
                    rows.append(row)
                else:
                    skipped += 1
    if not rows:
        print(f"no training example fits in {max_len} tokens", file=sys.stderr)
        return 2

    lora = LoraConfig(
        r=int(config["lora_rank"]),
        lora_alpha=int(config["lora_alpha"]),
        lora_dropout=float(config["lora_dropout"]),
        target_modules=list(TARGET_MODULES),
        task_type="CAUSAL_LM",
    )
    if config["gradient_checkpointing"]:
        # Activations recomputed in the backward pass instead of kept: a long prompt's would
        # otherwise take most of the peak memory.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, lora)
    model.train()
    batch_size = int(config["batch_size"])
    total_steps = int(config["total_steps"])
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=float(config["learning_rate"])
    )
    # Linear decay to zero over the steps actually run (a capped run still ends cool).
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / total_steps)
    )
    emit(
        progress,
        "plan",
        examples=len(rows),
        skipped=skipped,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        load_seconds=round(time.monotonic() - started, 2),
    )
    order: list[int] = []
    for step in range(1, total_steps + 1):
        if len(order) < batch_size:
            epoch_order = list(range(len(rows)))
            rng.shuffle(epoch_order)
            order += epoch_order
        picked, order = order[:batch_size], order[batch_size:]
        tick = time.monotonic()
        batch = batch_tensors(torch, [rows[i] for i in picked], pad_id)
        # bf16 matmuls where the CPU has them (AVX512-BF16, AMX): about three times as fast as
        # fp32 on two cores (measured: 27 s against 88 s a step); weights and adapter stay fp32.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(config["bf16"])):
            logits = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"],
                logits_to_keep=batch["keep"],
            ).logits
        # The kept logits predict the next token each: drop the last, whose next is beyond.
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
            batch["labels"].reshape(-1),
            ignore_index=IGNORE,
        )
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        emit(
            progress,
            "step",
            step=step,
            epoch=round(step / steps_per_epoch, 4),
            loss=round(float(loss.detach()), 5),
            seconds=round(time.monotonic() - tick, 3),
        )

    model.save_pretrained(str(out_dir / "adapter"))
    # The converter maps tensor names with the base model's config (the weights stay in GGUF)
    # and finds the architecture there; a config made from a GGUF file does not name it.
    base = model.get_base_model()
    base.config.architectures = [type(base).__name__]
    base.config.save_pretrained(str(out_dir / "base"))
    emit(progress, "saved", seconds=round(time.monotonic() - started, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
