"""Near-duplicate detection of short texts: normalized character 4-grams, MinHash signatures
computed a batch at a time with numpy, LSH banding to find candidates, and the exact Jaccard
similarity of the 4-gram sets to decide.

Normalization (Unicode NFKC, case folding, punctuation and spacing collapsed) makes texts that
differ only in those equal. 4-grams then tolerate a typo, an added word or a changed greeting:
one edit touches at most four grams. With 16 bands of 4 rows of a 64-value signature, a pair at
the default threshold (Jaccard 0.8) becomes a candidate with probability 0.9998, one at 0.9 with
~1. Lookups compare only a bucket's latest entries (`MAX_BUCKET`). A candidate whose signature agrees with the text's on fewer than `threshold - margin` of
its values is not worth the exact check: for deduplication the margin is 0.1, two standard
deviations of the estimate at the default threshold (on generated traffic it keeps ~99.8% of
the near-duplicates at half the checks); the evaluation-leak check, whose index is small, uses
0.4 and so checks nearly every candidate. The others get the exact check, so a decision is
never a false positive. Constants seed everything: same texts, same answers, in every process.
"""

import re
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence, Set
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Signature = npt.NDArray[np.uint32]

GRAM = 4
NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
DEDUP_MARGIN = 0.1
# Templated traffic fills some buckets with thousands of texts that share a band by template,
# which would make every lookup linear in what was kept. Only a bucket's latest entries are
# compared: a real near-duplicate also shares the bands drawn from its own words (order numbers,
# names), whose buckets are small.
MAX_BUCKET = 32
# The 4-gram sets of recently added texts, which are the likeliest candidates (lookups compare a
# bucket's latest entries): building the sets is most of a lookup's cost. A few thousand sets
# of a few hundred grams: tens of megabytes at most.
GRAM_CACHE = 4096
_SEED = 20250106
_rng = np.random.default_rng(_SEED)
# Odd multipliers make x -> a*x + b a bijection of uint32; the xor-shift mixes high bits down.
_A = (_rng.integers(0, 2**32, NUM_PERM, dtype=np.uint64) | 1).astype(np.uint32)[:, None]
_B = _rng.integers(0, 2**32, NUM_PERM, dtype=np.uint64).astype(np.uint32)[:, None]
# Each band's four values fold into one 64-bit key, different per band.
_BAND_MIX = (_rng.integers(0, 2**63, (1, BANDS, ROWS), dtype=np.uint64) | 1).astype(np.uint64)
_NOT_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """The text with case, Unicode forms, punctuation and spacing out of the comparison."""
    if not text.isascii():  # NFKC cannot change ASCII, and it is the slow part
        text = unicodedata.normalize("NFKC", text)
    return _NOT_WORD.sub(" ", text.casefold()).strip()


@dataclass(frozen=True, slots=True)
class Sketch:
    """A normalized text, its MinHash signature and its LSH band keys."""

    text: str
    signature: Signature
    bands: tuple[int, ...]


def sketches(texts: Sequence[str]) -> list[Sketch]:
    """One sketch per normalized text, computed in one vectorized pass over the batch."""
    if not texts:
        return []
    signatures, folded = _signatures_and_bands(texts)
    bands = folded.tolist()
    return [Sketch(text, signatures[i], tuple(bands[i])) for i, text in enumerate(texts)]


def _signatures_and_bands(
    texts: Sequence[str],
) -> tuple[Signature, npt.NDArray[np.uint64]]:
    # Texts shorter than a gram are padded, so every text has at least one gram.
    encoded = [text.encode().ljust(GRAM) for text in texts]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint32)
    grams = data[:-3] << 24 | data[1:-2] << 16 | data[2:-1] << 8 | data[3:]
    # A gram starting in a text's last three bytes runs into the next text.
    valid = np.ones(grams.size, dtype=bool)
    ends = np.cumsum(lengths)
    for back in (1, 2, 3):
        crossing = ends - back
        valid[crossing[crossing < grams.size]] = False
    grams = grams[valid]
    offsets = np.concatenate(([0], np.cumsum(lengths - (GRAM - 1))[:-1]))
    hashed = grams[None, :] * _A + _B
    hashed ^= hashed >> 16
    signatures = np.ascontiguousarray(np.minimum.reduceat(hashed, offsets, axis=1).T)
    folded = (signatures.reshape(-1, BANDS, ROWS).astype(np.uint64) * _BAND_MIX).sum(axis=2)
    return signatures, folded


def grams_of(text: str) -> set[str]:
    padded = text.ljust(GRAM)
    return {padded[i : i + GRAM] for i in range(len(padded) - GRAM + 1)}


def jaccard(a: str, b: str) -> float:
    """Exact Jaccard similarity of two normalized texts' 4-gram sets."""
    return 1.0 if a == b else _set_jaccard(grams_of(a), grams_of(b))


def _set_jaccard(left: Set[str], right: Set[str]) -> float:
    shared = len(left & right)
    return shared / (len(left) + len(right) - shared)


class NearDuplicateIndex:
    """Sketches added so far, searchable for one at least `threshold` similar."""

    def __init__(self, threshold: float, margin: float = DEDUP_MARGIN) -> None:
        self._threshold = threshold
        self._prefilter = int((threshold - margin) * NUM_PERM)
        # Most band keys are seen once: such a bucket is its position alone, not a list.
        self._buckets: dict[int, int | list[int]] = {}
        self._texts: list[str] = []
        self._signatures = np.empty((1024, NUM_PERM), dtype=np.uint32)
        self._gram_cache: OrderedDict[int, frozenset[str]] = OrderedDict()
        self._last_query: tuple[str, frozenset[str]] | None = None

    def __len__(self) -> int:
        return len(self._texts)

    def find(self, sketch: Sketch) -> int | None:
        """The position of an added sketch similar enough to `sketch`, if any."""
        found: set[int] = set()
        for key in sketch.bands:
            bucket = self._buckets.get(key)
            if isinstance(bucket, int):
                found.add(bucket)
            elif bucket is not None:
                found.update(bucket[-MAX_BUCKET:])
        if not found:
            return None
        positions = np.fromiter(found, dtype=np.int64, count=len(found))
        agreement = np.count_nonzero(self._signatures[positions] == sketch.signature, axis=1)
        query: frozenset[str] | None = None
        for index in np.argsort(-agreement, kind="stable"):
            if agreement[index] < self._prefilter:
                break
            position = int(positions[index])
            if sketch.text == self._texts[position]:
                return position
            if query is None:
                query = self._query_grams(sketch.text)
            if _set_jaccard(query, self._grams(position)) >= self._threshold:
                return position
        return None

    def find_many(self, texts: Sequence[str]) -> list[int | None]:
        """`find` for a batch of normalized texts. Only texts sharing a band key with the index
        are sketched one by one: with a small index that is a few of them."""
        found: list[int | None] = [None] * len(texts)
        if not texts or not self._buckets:
            return found
        signatures, folded = _signatures_and_bands(texts)
        keys = np.fromiter(self._buckets, dtype=np.uint64, count=len(self._buckets))
        for row in np.flatnonzero(np.isin(folded, keys).any(axis=1)).tolist():
            bands = tuple(folded[row].tolist())
            found[row] = self.find(Sketch(texts[row], signatures[row], bands))
        return found

    def add(self, sketch: Sketch) -> int:
        position = len(self._texts)
        if position == len(self._signatures):
            self._signatures = np.concatenate([self._signatures, np.empty_like(self._signatures)])
        self._signatures[position] = sketch.signature
        self._texts.append(sketch.text)
        if self._last_query is not None and self._last_query[0] == sketch.text:
            self._remember(position, self._last_query[1])  # a miss is usually added next
        for key in sketch.bands:
            bucket = self._buckets.get(key)
            if bucket is None:
                self._buckets[key] = position
            elif isinstance(bucket, int):
                self._buckets[key] = [bucket, position]
            else:
                bucket.append(position)
        return position

    def _query_grams(self, text: str) -> frozenset[str]:
        grams = frozenset(grams_of(text))
        self._last_query = (text, grams)
        return grams

    def _grams(self, position: int) -> frozenset[str]:
        grams = self._gram_cache.get(position)
        if grams is None:
            grams = frozenset(grams_of(self._texts[position]))
            self._remember(position, grams)
        else:
            self._gram_cache.move_to_end(position)
        return grams

    def _remember(self, position: int, grams: frozenset[str]) -> None:
        self._gram_cache[position] = grams
        if len(self._gram_cache) > GRAM_CACHE:
            self._gram_cache.popitem(last=False)
