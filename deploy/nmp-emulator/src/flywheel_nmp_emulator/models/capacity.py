"""What a model's parameter count (parsed from its name) buys it.

A bigger model sees richer features (stems, parameter names, character n-grams, paraphrases) and
makes fewer deliberate confusions, so a 70B-named model beats a 1B-named one before customization.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from flywheel_nmp_emulator.models.text import Featurizer

_SIZE = re.compile(r"(?<![a-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?![a-z0-9])")
DEFAULT_SIZE_B = 8.0

Guidance = Literal["none", "example", "adapter"]
_GUIDED_CONFUSION: dict[Guidance, float] = {"none": 1.0, "example": 0.5, "adapter": 0.1}


def parse_size_b(model_name: str) -> float:
    """'meta/llama-3.2-1b-instruct' -> 1.0, 'mixtral-8x7b' -> 56.0; unknown -> 8B."""
    match = _SIZE.search(model_name.lower())
    if not match:
        return DEFAULT_SIZE_B
    experts = int(match.group(1)) if match.group(1) else 1
    return experts * float(match.group(2))


@dataclass(frozen=True, slots=True)
class Capacity:
    size_b: float
    featurizer: Featurizer
    # Whether tool profiles include parameter names and descriptions, not just name + description.
    reads_parameters: bool
    # Whether argument extraction uses the words around a value (order 123 -> order_id).
    uses_cues: bool
    # Probability of answering with the runner-up tool: the model's "mistakes", drawn per request.
    confusion: float

    def confusion_for(self, guidance: Guidance) -> float:
        # A close few-shot example halves the confusion; a LoRA adapter trained on the workload
        # removes most of it.
        return self.confusion * _GUIDED_CONFUSION[guidance]


@lru_cache(maxsize=256)
def capacity_of(model_name: str) -> Capacity:
    size = parse_size_b(model_name)
    return Capacity(
        size_b=size,
        featurizer=Featurizer(
            stem=size >= 3,
            bigrams=False,
            char_ngrams=size >= 8,
            synonyms=size >= 30,
        ),
        reads_parameters=size >= 3,
        uses_cues=size >= 3,
        confusion=0.3 / (1.0 + size / 4.0),
    )
