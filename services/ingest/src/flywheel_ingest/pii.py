"""PII redaction before indexing, for the workloads configured for it.

What counts as personal data and how it is replaced is flywheel_contracts.pii, shared with the
datasets service; this module only decides which workloads and kinds are redacted.
"""

from collections import Counter
from typing import Any

from flywheel_contracts import pii
from flywheel_contracts.pii import PiiKind
from flywheel_ingest.config import PiiSettings


class Redactor:
    """Redacts the kinds configured, for the workloads configured."""

    def __init__(self, settings: PiiSettings) -> None:
        self._settings = settings
        self._redactor = pii.Redactor(settings.kinds)

    def applies_to(self, workload_id: str) -> bool:
        return self._settings.applies_to(workload_id)

    def redact(self, fields: dict[str, Any]) -> Counter[PiiKind]:
        """Replace what is found in `fields` (in place) and count it per kind."""
        return self._redactor.redact(fields)
