"""Personal data in logged LLM traffic: what counts, how it is found, how it is replaced.

Ingest redacts before indexing and datasets scrub the files they upload; both use this one
definition so a value redacted in one place is redacted the same way in the other.

Every string of a record is scanned except the identity fields, the timestamp and the request's
tool schemas (written by developers, not users). A match becomes ``[REDACTED:<kind>]``. Patterns
favour precision: card numbers must pass the Luhn check and start like a card, phone numbers need
9-15 digits in separated groups, IPv4 octets are at most 255, so order numbers, dates, amounts and
epoch times stay readable.
"""

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

_NOT_SCANNED = frozenset({"workload_id", "client_id", "timestamp"})
_SCHEMAS = "tools"


class PiiKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    CARD_NUMBER = "card_number"
    API_KEY = "api_key"
    BEARER_TOKEN = "bearer_token"
    SSN = "ssn"
    IP_ADDRESS = "ip_address"


def placeholder(kind: PiiKind) -> str:
    return f"[REDACTED:{kind.value}]"


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(number: str) -> bool:
    digits = re.sub(r"\D", "", number)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")


def _phone(number: str) -> bool:
    # "2025-01-06 09" has the digits and the groups of a phone number, but is a date and an hour.
    return 9 <= sum(char.isdigit() for char in number) <= 15 and not _DATE.match(number)


def _ipv4(address: str) -> bool:
    return all(int(octet) <= 255 for octet in address.split("."))


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: PiiKind
    pattern: re.Pattern[str]
    group: str = "secret"
    accept: Callable[[str], bool] | None = None

    def apply(self, text: str, found: Counter[PiiKind]) -> str:
        return self.pattern.sub(lambda match: self._replace(match, found), text)

    def _replace(self, match: re.Match[str], found: Counter[PiiKind]) -> str:
        secret = match.group(self.group)
        if self.accept is not None and not self.accept(secret):
            return match.group(0)
        found[self.kind] += 1
        start, end = match.span(self.group)
        whole = match.group(0)
        offset = match.start(0)
        return whole[: start - offset] + placeholder(self.kind) + whole[end - offset :]


_API_KEY_FORMS = "|".join(
    (
        r"\b(?:sk|pk|rk)-(?:proj-|live-|test-)?[A-Za-z0-9_-]{16,}",  # OpenAI and alike
        r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
        r"\bnvapi-[A-Za-z0-9_-]{20,}",  # NVIDIA
        r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
        r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
        r"\bAIza[0-9A-Za-z_-]{35}",  # Google
    )
)

# Order matters: a social security number or an IP address would otherwise pass for a phone.
RULES: tuple[_Rule, ...] = (
    _Rule(
        PiiKind.BEARER_TOKEN,
        re.compile(r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)"),
    ),
    _Rule(PiiKind.API_KEY, re.compile(f"(?P<secret>{_API_KEY_FORMS})")),
    _Rule(
        # A key handed over as `api_key=...`, whatever its vendor format.
        PiiKind.API_KEY,
        re.compile(
            r"(?i)\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token)[\"']?\s*[:=]\s*"
            r"[\"']?(?P<secret>[A-Za-z0-9_\-./+]{12,})"
        ),
    ),
    _Rule(
        PiiKind.EMAIL,
        re.compile(
            r"(?P<secret>\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b)"
        ),
    ),
    _Rule(
        PiiKind.CARD_NUMBER,
        re.compile(r"(?<![\d.])(?P<secret>[2-6]\d{3}(?:[ -]?\d){9,15})(?![\d])"),
        accept=_card,
    ),
    _Rule(PiiKind.SSN, re.compile(r"(?<![\w-])(?P<secret>\d{3}-\d{2}-\d{4})(?![\w-])")),
    _Rule(
        PiiKind.IP_ADDRESS,
        re.compile(r"(?<![\w.])(?P<secret>\d{1,3}(?:\.\d{1,3}){3})(?![\w.])"),
        accept=_ipv4,
    ),
    _Rule(
        PiiKind.PHONE,
        re.compile(
            r"(?<![\w+(])(?P<secret>(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
            r"\d{2,4}(?:[ .-]\d{2,4}){1,4})(?![\w])"
        ),
        accept=_phone,
    ),
)


class Redactor:
    """Replaces personal data of the chosen kinds and counts what it replaced, per kind."""

    def __init__(self, kinds: Iterable[PiiKind] = tuple(PiiKind)) -> None:
        chosen = frozenset(kinds)
        self._rules = tuple(rule for rule in RULES if rule.kind in chosen)

    def redact(self, fields: dict[str, Any]) -> Counter[PiiKind]:
        """Replace what is found in a log record's `fields`, in place: nested containers are
        rebuilt, never mutated, so a shallow copy keeps the original intact."""
        found: Counter[PiiKind] = Counter()
        for key, value in fields.items():
            if key in _NOT_SCANNED:
                continue
            if key == "request" and isinstance(value, dict):
                fields[key] = {
                    name: part if name == _SCHEMAS else self._walk(part, found)
                    for name, part in value.items()
                }
            else:
                fields[key] = self._walk(value, found)
        return found

    def text(self, text: str, found: Counter[PiiKind]) -> str:
        for rule in self._rules:
            text = rule.apply(text, found)
        return text

    def _walk(self, value: Any, found: Counter[PiiKind]) -> Any:
        if isinstance(value, str):
            return self.text(value, found)
        if isinstance(value, list):
            return [self._walk(item, found) for item in value]
        if isinstance(value, dict):
            return {key: self._walk(item, found) for key, item in value.items()}
        return value
