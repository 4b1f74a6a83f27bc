"""Deterministic pseudo-random draws: the same seed and inputs always give the same number, in
any process, without a shared random generator whose state would depend on request order."""

from __future__ import annotations

import hashlib


def unit_draw(seed: int, *parts: object) -> float:
    """A number in [0, 1) determined by the seed and the parts."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def short_hash(*parts: object, size: int = 12) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=size).hexdigest()[: 2 * size]
