"""Near-duplicate detection of short texts: 4-grams of the normalized text's UTF-8 bytes,
MinHash signatures computed a batch at a time with numpy, LSH banding to find candidates, and
the exact Jaccard similarity of the 4-gram sets to decide.

Normalization (Unicode NFKC, case folding, punctuation and spacing collapsed) makes texts that
differ only in those equal. 4-grams then tolerate a typo, an added word or a changed greeting:
one edit touches at most four grams. Grams are taken over bytes, not characters, so that a gram
is one 32-bit integer: the exact check is then a vectorized comparison of sorted integer arrays
rather than a set of strings built per text, and it measures the very sets the signatures
estimate. For ASCII text the two are the same; a non-ASCII character spans two to four bytes.

With 16 bands of 4 rows of a 64-value signature, a pair at the default threshold (Jaccard 0.8)
becomes a candidate with probability 0.9998, one at 0.9 with ~1. Lookups compare only a
bucket's latest entries (`MAX_BUCKET`). A candidate whose signature agrees with the text's on
fewer than `threshold - margin` of its values is not worth the exact check: for deduplication
the margin is 0.1, two standard deviations of the estimate at the default threshold (on
generated traffic it keeps ~99.8% of the near-duplicates at half the checks); the
evaluation-leak check, whose index is small, uses 0.4 and so checks nearly every candidate. The
others get the exact check, so a decision is never a false positive. Constants seed everything:
same texts, same answers, in every process.
"""

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Signature = npt.NDArray[np.uint32]
Grams = npt.NDArray[np.uint32]

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
_SEED = 20250106
_rng = np.random.default_rng(_SEED)
# Odd multipliers make x -> a*x + b a bijection of uint32; the xor-shift mixes high bits down.
_A = (_rng.integers(0, 2**32, NUM_PERM, dtype=np.uint64) | 1).astype(np.uint32)
_B = _rng.integers(0, 2**32, NUM_PERM, dtype=np.uint64).astype(np.uint32)
# Each band's four values fold into one 64-bit key, different per band.
_BAND_MIX = (_rng.integers(0, 2**63, (1, BANDS, ROWS), dtype=np.uint64) | 1).astype(np.uint64)
_NOT_WORD = re.compile(r"[\W_]+")
_ROW_SHIFT = np.uint64(32)
_ROW_SHIFT_INT = 32
_POSITION_MASK = (1 << 32) - 1


def normalize(text: str) -> str:
    """The text with case, Unicode forms, punctuation and spacing out of the comparison."""
    if not text.isascii():  # NFKC cannot change ASCII, and it is the slow part
        text = unicodedata.normalize("NFKC", text)
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def grams_of(text: str) -> set[int]:
    """The set the similarity is measured on: each 4-byte window of the text's UTF-8 bytes as a
    big-endian integer (a text shorter than a gram is padded with spaces)."""
    data = text.encode().ljust(GRAM)
    return {int.from_bytes(data[i : i + GRAM]) for i in range(len(data) - GRAM + 1)}


def jaccard(a: str, b: str) -> float:
    """Exact Jaccard similarity of two normalized texts' 4-gram sets."""
    left, right = grams_of(a), grams_of(b)
    shared = len(left & right)
    return shared / (len(left) + len(right) - shared)


@dataclass(frozen=True, slots=True)
class Sketch:
    """A normalized text's distinct 4-grams (sorted), MinHash signature and LSH band keys."""

    grams: Grams
    signature: Signature
    bands: tuple[int, ...]


def sketches(texts: Sequence[str]) -> list[Sketch]:
    """One sketch per normalized text, computed in one vectorized pass over the batch."""
    if not texts:
        return []
    batch = _Batch.of(texts)
    per_text = np.split(batch.grams, batch.starts[1:])
    bands = batch.folded.tolist()
    return [Sketch(per_text[i], batch.signatures[i], tuple(bands[i])) for i in range(len(texts))]


@dataclass(frozen=True)
class _Batch:
    """Texts sketched together. `keys`: every text's distinct grams, sorted, keyed by the text's
    row (row << 32 | gram), one text after another from `starts`; `grams`: the same without
    the row."""

    keys: npt.NDArray[np.uint64]
    grams: Grams
    starts: npt.NDArray[np.int64]
    sizes: npt.NDArray[np.int64]
    signatures: Signature
    folded: npt.NDArray[np.uint64]

    @classmethod
    def of(cls, texts: Sequence[str]) -> "_Batch":
        keys = _gram_keys(texts)
        starts = np.searchsorted(keys >> _ROW_SHIFT, np.arange(len(texts), dtype=np.uint64))
        starts = starts.astype(np.int64)
        grams = keys.astype(np.uint32)
        signatures = _minhash(grams, starts)
        folded = (signatures.reshape(-1, BANDS, ROWS).astype(np.uint64) * _BAND_MIX).sum(axis=2)
        sizes = np.diff(starts, append=keys.size)
        return cls(keys, grams, starts, sizes, signatures, folded)


def _minhash(grams: Grams, starts: npt.NDArray[np.int64]) -> Signature:
    """Each text's signature: per permutation, the least hash of its grams. One permutation at
    a time, in reused buffers: the batch's grams stay in cache (all 64 at once would stream a
    64-times larger array through memory, three times slower)."""
    signatures = np.empty((starts.size, NUM_PERM), dtype=np.uint32)
    hashed, shifted = np.empty_like(grams), np.empty_like(grams)
    for permutation in range(NUM_PERM):
        np.multiply(grams, _A[permutation], out=hashed)
        hashed += _B[permutation]
        np.right_shift(hashed, 16, out=shifted)
        hashed ^= shifted
        signatures[:, permutation] = np.minimum.reduceat(hashed, starts)
    return signatures


def _gram_keys(texts: Sequence[str]) -> npt.NDArray[np.uint64]:
    """(row << 32 | gram) for every distinct gram of every text, sorted: one sort of the whole
    batch sorts each text's grams."""
    encoded = [text.encode().ljust(GRAM) for text in texts]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint32)
    grams = data[:-3] << 24 | data[1:-2] << 16 | data[2:-1] << 8 | data[3:]
    rows = np.repeat(np.arange(len(texts), dtype=np.uint64), lengths)[: grams.size]
    # A gram starting in a text's last three bytes runs into the next text.
    valid = np.ones(grams.size, dtype=bool)
    ends = np.cumsum(lengths)
    for back in (1, 2, 3):
        crossing = ends - back
        valid[crossing[crossing < grams.size]] = False
    keys = np.sort(rows[valid] << _ROW_SHIFT | grams[valid].astype(np.uint64))
    first = np.empty(keys.size, dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


class NearDuplicateIndex:
    """Sketches added so far, searchable for one at least `threshold` similar.

    The added texts' grams are kept end to end in one array, so the exact check of all of a
    lookup's candidates is a handful of vectorized operations. Of several similar texts, a
    lookup answers the one whose signature agrees most (the earliest added among equals)."""

    def __init__(self, threshold: float, margin: float = DEDUP_MARGIN) -> None:
        self._threshold = threshold
        self._prefilter = int((threshold - margin) * NUM_PERM)
        # Most band keys are seen once: such a bucket is its position alone, not a list.
        self._buckets: dict[int, int | list[int]] = {}
        self._size = 0
        self._signatures = np.empty((1024, NUM_PERM), dtype=np.uint32)
        self._gram_starts = np.empty(1024, dtype=np.int64)
        self._gram_counts = np.empty(1024, dtype=np.int64)
        self._grams = np.empty(1 << 16, dtype=np.uint32)
        self._grams_used = 0

    def __len__(self) -> int:
        return self._size

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
        positions = np.sort(np.fromiter(found, dtype=np.int64, count=len(found)))
        agreement = (self._signatures.take(positions, axis=0) == sketch.signature).sum(axis=1)
        close = agreement >= self._prefilter
        if not close.any():
            return None
        ranked = positions[close][np.argsort(-agreement[close], kind="stable")]
        similarity = self._similarities(sketch.grams, sketch.grams.size, ranked)
        similar = np.flatnonzero(similarity >= self._threshold)
        return int(ranked[similar[0]]) if similar.size else None

    def find_many(self, texts: Sequence[str]) -> list[int | None]:
        """`find` for a batch of normalized texts, every lookup at once: for an index that
        does not change meanwhile (the evaluation-leak check)."""
        found: list[int | None] = [None] * len(texts)
        if not texts or not self._size:
            return found
        batch = _Batch.of(texts)
        rows, positions = self._candidate_pairs(batch.folded)
        agreement = (batch.signatures[rows] == self._signatures[positions]).sum(axis=1)
        close = agreement >= self._prefilter
        rows, positions, agreement = rows[close], positions[close], agreement[close]
        if not rows.size:
            return found
        similarity = self._similarities(batch.keys, batch.sizes[rows], positions, rows)
        similar = similarity >= self._threshold
        rows, positions, agreement = rows[similar], positions[similar], agreement[similar]
        best = np.lexsort((positions, -agreement, rows))
        rows, positions = rows[best], positions[best]
        _, firsts = np.unique(rows, return_index=True)
        for row, position in zip(rows[firsts].tolist(), positions[firsts].tolist(), strict=True):
            found[row] = position
        return found

    def add(self, sketch: Sketch) -> int:
        position = self._size
        if position == len(self._signatures):
            self._signatures = _doubled(self._signatures)
            self._gram_starts = _doubled(self._gram_starts)
            self._gram_counts = _doubled(self._gram_counts)
        count = sketch.grams.size
        while self._grams_used + count > self._grams.size:
            self._grams = _doubled(self._grams)
        self._grams[self._grams_used : self._grams_used + count] = sketch.grams
        self._gram_starts[position] = self._grams_used
        self._gram_counts[position] = count
        self._grams_used += count
        self._signatures[position] = sketch.signature
        self._size += 1
        for key in sketch.bands:
            bucket = self._buckets.get(key)
            if bucket is None:
                self._buckets[key] = position
            elif isinstance(bucket, int):
                self._buckets[key] = [bucket, position]
            else:
                bucket.append(position)
        return position

    def _candidate_pairs(
        self, folded: npt.NDArray[np.uint64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(row, position) for every text of a batch and every added text it shares a band key
        with (of each bucket, its latest `MAX_BUCKET`, as `find` takes), each pair once."""
        members = [
            [bucket] if isinstance(bucket, int) else bucket[-MAX_BUCKET:]
            for bucket in self._buckets.values()
        ]
        keys = np.fromiter(self._buckets, dtype=np.uint64, count=len(self._buckets))
        counts = np.fromiter(map(len, members), dtype=np.int64, count=len(members))
        firsts = np.cumsum(counts) - counts
        flat = np.fromiter(itertools.chain.from_iterable(members), dtype=np.int64)
        order = np.argsort(keys)
        wanted = folded.ravel()
        slots = order[np.minimum(np.searchsorted(keys, wanted, sorter=order), keys.size - 1)]
        hits = np.flatnonzero(keys[slots] == wanted)
        buckets = slots[hits]
        spans = counts[buckets]
        segments = np.cumsum(spans) - spans
        offsets = np.repeat(firsts[buckets] - segments, spans)
        positions = flat[np.arange(offsets.size) + offsets]
        rows = np.repeat(hits // BANDS, spans)
        pairs = np.unique(rows << _ROW_SHIFT_INT | positions)
        return pairs >> _ROW_SHIFT_INT, pairs & _POSITION_MASK

    def _similarities(
        self,
        queries: npt.NDArray[Any],
        sizes: int | npt.NDArray[np.int64],
        positions: npt.NDArray[np.int64],
        rows: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Exact Jaccard similarity of query texts and added texts, pair by pair. `queries`:
        one text's sorted distinct grams (`rows` None), or a batch's keys (`rows`: each pair's
        query row); `sizes`: the query's distinct gram count, or each pair's."""
        counts = self._gram_counts[positions]
        segments = np.cumsum(counts) - counts
        # Every position's grams, one after another: each start, then counting up.
        offsets = np.repeat(self._gram_starts[positions] - segments, counts)
        wanted: npt.NDArray[Any] = self._grams[np.arange(offsets.size) + offsets]
        if rows is not None:
            wanted = np.repeat(rows.astype(np.uint64) << _ROW_SHIFT, counts) | wanted
        slots = np.minimum(np.searchsorted(queries, wanted), queries.size - 1)
        shared = np.add.reduceat((queries[slots] == wanted).astype(np.int64), segments)
        similarity: npt.NDArray[np.float64] = shared / (sizes + counts - shared)
        return similarity


def _doubled(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.concatenate([array, np.empty_like(array)])


def lexical_similarities(
    queries: Sequence[str], documents: Sequence[str]
) -> npt.NDArray[np.float32]:
    """Cosine similarity of each query with each document (rows: queries), over the sets of
    4-grams the near-duplicate check measures (`normalize`, then `grams_of`): shared grams over
    the geometric mean of the two set sizes. The fallback of semantic ICL selection when no
    embeddings endpoint answers; one vectorized pass per query over every document's grams."""
    scores = np.zeros((len(queries), len(documents)), dtype=np.float32)
    if not queries or not documents:
        return scores
    document_grams = [np.fromiter(grams_of(normalize(d)), dtype=np.uint32) for d in documents]
    sizes = np.array([g.size for g in document_grams], dtype=np.float32)
    owners = np.repeat(np.arange(len(documents)), [g.size for g in document_grams])
    every_gram = np.concatenate(document_grams)
    for row, query in enumerate(queries):
        grams = np.fromiter(grams_of(normalize(query)), dtype=np.uint32)
        shared = np.bincount(
            owners[np.isin(every_gram, grams, assume_unique=False)], minlength=len(documents)
        )
        scores[row] = shared / np.sqrt(sizes * grams.size)
    return scores
