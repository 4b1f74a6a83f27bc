"""Deduplication on the user turns: exact (the blueprint's key, the turns as logged) and near
(similar normalized text). The first record offered wins, so with records read newest first the
newest copy is kept.

A read offers records to several independent streams (see `selection`); `decide` runs a batch
of offers in order and answers one verdict byte per offer, which is what crosses the boundary
when deduplication runs in a process of its own (`dedup_worker`).
"""

from collections.abc import Sequence

from flywheel_datasets.records import exact_key
from flywheel_datasets.rules import Rule
from flywheel_datasets.similarity import NearDuplicateIndex, Sketch, normalize, sketches

# A record's user turns, offered to the stream numbered first.
Offer = tuple[int, list[str]]
# A verdict byte is an index into this: kept, or the rule that drops the record.
VERDICTS: tuple[Rule | None, ...] = (None, Rule.DUPLICATE, Rule.NEAR_DUPLICATE)
_CODES = {verdict: code for code, verdict in enumerate(VERDICTS)}


class Deduplicator:
    def __init__(self, near_threshold: float) -> None:
        self._exact: set[bytes] = set()
        self._near = NearDuplicateIndex(near_threshold)

    def offer(self, turns: list[str], sketch: Sketch) -> Rule | None:
        """None when the record is new (and now remembered), else the rule that drops it."""
        key = exact_key(turns)
        if key in self._exact:
            return Rule.DUPLICATE
        if self._near.find(sketch) is not None:
            return Rule.NEAR_DUPLICATE
        self._exact.add(key)
        self._near.add(sketch)
        return None


def decide(streams: Sequence[Deduplicator], offers: Sequence[Offer]) -> bytes:
    """Offer each record to its stream, in order: one `VERDICTS` index per offer."""
    texts = [normalize("\n".join(turns)) for _, turns in offers]
    return bytes(
        _CODES[streams[stream].offer(turns, sketch)]
        for (stream, turns), sketch in zip(offers, sketches(texts), strict=True)
    )
