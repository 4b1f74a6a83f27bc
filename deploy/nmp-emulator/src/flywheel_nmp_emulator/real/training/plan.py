"""What a customization job trains (pure): the job's hyperparameters applied to its records,
within the laptop profile's caps.

NMP trains `epochs * ceil(records / batch_size)` steps. On a CPU a step of Qwen2.5-0.5B takes
seconds per sequence, so the emulator caps the batch (`max_train_batch_size`, default 1) and the
steps (`max_train_steps`, default 60, about a quarter of an hour on two cores): a capped job
reports the epochs it really covered, not the ones it was asked for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# NMP's LoRA defaults, for a job that names none (the SDK's LoraParametersParam).
DEFAULT_RANK = 8
DEFAULT_ALPHA = 16
DEFAULT_DROPOUT = 0.0
DEFAULT_LEARNING_RATE = 1e-4
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class TrainingPlan:
    records: int
    epochs: int
    requested_batch_size: int
    batch_size: int
    steps_per_epoch: int
    requested_steps: int
    total_steps: int
    learning_rate: float
    lora_rank: int
    lora_alpha: int
    lora_dropout: float

    @property
    def capped(self) -> bool:
        return (
            self.total_steps < self.requested_steps or self.batch_size < self.requested_batch_size
        )

    def describe(self) -> str:
        text = (
            f"{self.total_steps} steps of {self.batch_size} on {self.records} records "
            f"(lr {self.learning_rate:g}, LoRA rank {self.lora_rank}, alpha {self.lora_alpha}, "
            f"dropout {self.lora_dropout:g})"
        )
        if self.capped:
            text += (
                f"; asked for {self.epochs} epoch(s) of batch {self.requested_batch_size} = "
                f"{self.requested_steps} steps, capped by the laptop profile"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any, default: float) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def training_plan(
    hyperparameters: dict[str, Any], records: int, *, max_steps: int, max_batch_size: int
) -> TrainingPlan:
    """The plan for `records` training examples; `records` must be positive."""
    if records < 1:
        raise ValueError("nothing to train on: no usable training record")
    lora = hyperparameters.get("lora")
    lora = lora if isinstance(lora, dict) else {}
    epochs = max(int(_number(hyperparameters.get("epochs"), 1)), 1)
    requested_batch = max(int(_number(hyperparameters.get("batch_size"), DEFAULT_BATCH_SIZE)), 1)
    batch = min(requested_batch, max_batch_size)
    steps_per_epoch = math.ceil(records / batch)
    requested_steps = epochs * steps_per_epoch
    return TrainingPlan(
        records=records,
        epochs=epochs,
        requested_batch_size=requested_batch,
        batch_size=batch,
        steps_per_epoch=steps_per_epoch,
        requested_steps=requested_steps,
        total_steps=min(requested_steps, max_steps),
        learning_rate=_number(hyperparameters.get("learning_rate"), DEFAULT_LEARNING_RATE),
        lora_rank=max(int(_number(lora.get("adapter_dim"), DEFAULT_RANK)), 1),
        lora_alpha=max(int(_number(lora.get("alpha"), DEFAULT_ALPHA)), 1),
        lora_dropout=min(max(_number(lora.get("adapter_dropout"), DEFAULT_DROPOUT), 0.0), 0.9),
    )
