"""Optional scrubbing of personal data from every dataset file.

Every string of a record is scanned, including tool-call arguments, so a redacted value stays
consistent between the question and the expected call. What counts as personal data, and how it
is replaced, is flywheel_contracts.pii, the same definition ingest redacts with.
"""

from collections import Counter

from flywheel_contracts.pii import PiiKind, Redactor
from flywheel_datasets.records import Record


class Scrubber:
    """Scrubbed copies of records, with the count of what was replaced, per kind."""

    def __init__(self) -> None:
        self.found: Counter[PiiKind] = Counter()
        self._redactor = Redactor()

    def record(self, record: Record) -> Record:
        scrubbed = dict(record)  # the redactor rebuilds nested data, so the source stays intact
        self.found += self._redactor.redact(scrubbed)
        return scrubbed
