"""Deduplication on the user turns: exact (the blueprint's key, the turns as logged) and near
(similar normalized text), counted separately. The first record offered wins, so with records
read newest first the newest copy is kept."""

from flywheel_datasets.records import exact_key
from flywheel_datasets.rules import Rule
from flywheel_datasets.similarity import NearDuplicateIndex, Sketch


class Deduplicator:
    def __init__(self, near_threshold: float) -> None:
        self._exact: set[bytes] = set()
        self._near = NearDuplicateIndex(near_threshold)
        self.duplicates = 0
        self.near_duplicates = 0

    def __len__(self) -> int:
        return len(self._exact)

    def offer(self, turns: list[str], sketch: Sketch) -> Rule | None:
        """None when the record is new (and now remembered), else the rule that drops it."""
        key = exact_key(turns)
        if key in self._exact:
            self.duplicates += 1
            return Rule.DUPLICATE
        if self._near.find(sketch) is not None:
            self.near_duplicates += 1
            return Rule.NEAR_DUPLICATE
        self._exact.add(key)
        self._near.add(sketch)
        return None
