"""The embedding model: signed feature hashing of words, word pairs and character trigrams into
a fixed dimension, L2-normalised. Stable across processes (crc32, not Python's salted hash) and
meaningful: texts that share words or word pieces get close vectors."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from flywheel_nmp_emulator.models.text import Featurizer

# Stems plus pairs plus trigrams: paraphrases with shared stems land near each other, and
# trigrams keep typos and inflections close.
_FEATURES = Featurizer(stem=True, bigrams=True, char_ngrams=True)


def embed_one(text: str, dim: int) -> npt.NDArray[np.float32]:
    vec = _FEATURES.vector(text)
    if not vec:
        # An empty text still gets a unit vector, on an axis no real text favours.
        out = np.zeros(dim, dtype=np.float32)
        out[0] = 1.0
        return out
    indices = np.empty(len(vec), dtype=np.int64)
    weights = np.empty(len(vec), dtype=np.float64)
    for i, (term, weight) in enumerate(vec.items()):
        h = zlib.crc32(term.encode())
        indices[i] = h % dim
        # The top bit decides the sign, so hash collisions cancel out on average.
        weights[i] = weight if h & 0x80000000 else -weight
    out = np.bincount(indices, weights=weights, minlength=dim).astype(np.float32)
    norm = float(np.linalg.norm(out))
    if norm == 0.0:
        out[0] = 1.0
        return out
    return out / norm


def embed(texts: Sequence[str], dim: int) -> npt.NDArray[np.float32]:
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([embed_one(t, dim) for t in texts])
