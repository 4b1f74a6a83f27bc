"""One source-topic line, whatever its producer's shape, to a checked record or a refusal."""

from collections.abc import Callable
from typing import Any

import orjson

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import ProducerSettings
from flywheel_ingest.producers import nat, otlp, relay
from flywheel_ingest.producers.formats import Format, Untranslatable
from flywheel_ingest.validation import LogRecord, Refusal, validate

Translator = Callable[[dict[str, Any], ProducerSettings], dict[str, Any]]

_TRANSLATORS: dict[Format, Translator] = {
    Format.NAT: nat.to_record,
    Format.OTLP_SPAN: otlp.to_record,
    Format.RELAY_CALL: relay.to_record,
}


def verdict(
    value: bytes, fmt: str, settings: ProducerSettings, max_line_bytes: int
) -> LogRecord | Refusal:
    """What ingest makes of the line: the record it stores, or why it refuses it."""
    if fmt == Format.RECORD:
        return validate(value, max_line_bytes)
    translated = translate(value, fmt, settings, max_line_bytes)
    if isinstance(translated, Refusal):
        return translated
    return validate(translated, max_line_bytes)


def translate(
    value: bytes, fmt: str, settings: ProducerSettings, max_line_bytes: int
) -> bytes | Refusal:
    """A producer's item as a Flywheel record line (still to be validated)."""
    try:
        translator = _TRANSLATORS[Format(fmt)]
    except (ValueError, KeyError):
        known = ", ".join(f.value for f in Format)
        return Refusal(
            RejectReason.NOT_OPENAI_FORMAT, f"unknown line format {fmt[:60]!r} (known: {known})"
        )
    if len(value) > max_line_bytes:
        return Refusal(
            RejectReason.OVERSIZE, f"the item is {len(value)} bytes; the limit is {max_line_bytes}"
        )
    try:
        item = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Refusal(RejectReason.INVALID_JSON, f"not valid JSON: {exc}")
    if not isinstance(item, dict):
        return Refusal(RejectReason.NOT_AN_OBJECT, f"a {fmt} item must be a JSON object")
    try:
        record = translator(item, settings)
    except Untranslatable as exc:
        return Refusal(exc.reason, f"{fmt}: {exc.message}")
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError as exc:
        return Refusal(RejectReason.INVALID_JSON, f"{fmt}: cannot be written as JSON: {exc}")
