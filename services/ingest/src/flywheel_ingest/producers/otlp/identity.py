"""Which workload and client a span's call belongs to.

Producers name them in free text (a service or an agent name, the application's own ids), and
a record's ids are identifiers, so a value is mapped into the identifier alphabet predictably
rather than refused: the same name always gives the same id.
"""

import unicodedata
from collections.abc import Iterable
from typing import NoReturn

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import OtlpSettings
from flywheel_ingest.producers.formats import Untranslatable
from flywheel_ingest.producers.otlp.span import OtlpSpan

UNKNOWN_SERVICE = "unknown_service"
"""The OpenTelemetry SDKs' `service.name` when the application sets none."""

_IDENTIFIER_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@/+-"
)
_IDENTIFIER_MAX = 256


def workload_id(span: OtlpSpan, settings: OtlpSettings) -> str:
    found = _identity(span, settings.workload_attributes)
    if found is None:
        _missing(
            "no workload id: none of the attributes "
            f"{', '.join(settings.workload_attributes)} is set on the span or its resource "
            "(FLYWHEEL_INGEST_PRODUCERS__OTLP__WORKLOAD_ATTRIBUTES names them)"
        )
    return found


def client_id(span: OtlpSpan, settings: OtlpSettings) -> str:
    found = _identity(span, settings.client_attributes) or settings.default_client_id
    if found is None:
        _missing(
            "no client id: none of the attributes "
            f"{', '.join(settings.client_attributes)} is set on the span or its resource, "
            "and FLYWHEEL_INGEST_PRODUCERS__OTLP__DEFAULT_CLIENT_ID is not configured"
        )
    return found


def to_identifier(text: str) -> str:
    """`text` in the identifier alphabet (see the package's docstring); empty when nothing is
    left of it."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept: list[str] = []
    for character in decomposed:
        if unicodedata.combining(character):
            continue
        if character in _IDENTIFIER_CHARS:
            kept.append(character)
        elif not kept or kept[-1] != "-":
            kept.append("-")
    return "".join(kept).strip("-")[:_IDENTIFIER_MAX].strip("-")


def _identity(span: OtlpSpan, names: Iterable[str]) -> str | None:
    for name in names:
        for scope in (span.attributes, span.resource):
            value = scope.get(name)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                continue
            text = str(value)
            if name == "service.name" and text.startswith(UNKNOWN_SERVICE):
                continue
            identifier = to_identifier(text)
            if identifier:
                return identifier
    return None


def _missing(message: str) -> NoReturn:
    raise Untranslatable(RejectReason.MISSING_FIELD, message)
