"""Optional scrubbing of personal data from every dataset file.

Every string of a record is scanned, including tool-call arguments, so a redacted value stays
consistent between the question and the expected call; the identity fields, the timestamp and
the tool schemas (written by developers, not users) are left alone. Patterns favour precision:
card numbers must pass the Luhn check, phone numbers need a separated 3-3-4 digit shape, IPv4
octets must be at most 255, so order numbers, amounts and dates stay readable.
"""

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from flywheel_datasets.records import Record

_UNSCANNED = frozenset({"workload_id", "client_id", "timestamp"})


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _ipv4(text: str) -> bool:
    return all(int(octet) <= 255 for octet in text.split("."))


@dataclass(frozen=True, slots=True)
class _Pattern:
    kind: str
    regex: re.Pattern[str]
    accept: Callable[[str], bool] | None = None


PATTERNS: tuple[_Pattern, ...] = (
    _Pattern(
        "email",
        re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    ),
    _Pattern("card_number", re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w.])"), _card),
    _Pattern("ssn", re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")),
    _Pattern(
        "phone",
        re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]\d{3}[ .-]\d{4}(?!\w)"),
    ),
    _Pattern("ip_address", re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"), _ipv4),
)


def placeholder(kind: str) -> str:
    return f"[REDACTED_{kind.upper()}]"


class Scrubber:
    """Replaces personal data in records and counts what it replaced, per kind."""

    def __init__(self) -> None:
        self.found: Counter[str] = Counter()

    def text(self, text: str) -> str:
        for pattern in PATTERNS:
            text = pattern.regex.sub(partial(self._replace, pattern=pattern), text)
        return text

    def record(self, record: Record) -> Record:
        """A scrubbed copy of `record`."""
        scrubbed: Record = {}
        for key, value in record.items():
            if key in _UNSCANNED:
                scrubbed[key] = value
            elif key == "request" and isinstance(value, dict):
                scrubbed[key] = {
                    name: part if name == "tools" else self._walk(part)
                    for name, part in value.items()
                }
            else:
                scrubbed[key] = self._walk(value)
        return scrubbed

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        if isinstance(value, dict):
            return {key: self._walk(item) for key, item in value.items()}
        return value

    def _replace(self, match: re.Match[str], pattern: _Pattern) -> str:
        if pattern.accept is not None and not pattern.accept(match.group(0)):
            return match.group(0)
        self.found[pattern.kind] += 1
        return placeholder(pattern.kind)
