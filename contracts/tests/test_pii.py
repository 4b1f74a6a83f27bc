"""Personal data: each kind found, counted and replaced; look-alikes left alone; a record
scanned everywhere but its identity fields and tool schemas."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from flywheel_contracts.pii import PiiKind, Redactor, luhn_valid, placeholder
from flywheel_contracts.traffic import generate_records

pytestmark = pytest.mark.unit

EVERYTHING = Redactor()


def _redact(text: str, redactor: Redactor = EVERYTHING) -> tuple[str, Counter[PiiKind]]:
    found: Counter[PiiKind] = Counter()
    return redactor.text(text, found), found


@pytest.mark.parametrize(
    ("text", "kind", "kept"),
    [
        ("write to jane.doe+shop@mail.example.org today", PiiKind.EMAIL, "write to "),
        ("call +1 415-555-0123 please", PiiKind.PHONE, "call "),
        ("call (312) 555-0142", PiiKind.PHONE, "call "),
        ("call 415.555.0199", PiiKind.PHONE, "call "),
        ("ring +44 20 7946 0321", PiiKind.PHONE, "ring "),
        ("ring +1 (646) 555-0100.", PiiKind.PHONE, "ring "),
        ("card 4111 1111 1111 1111 exp 12/27", PiiKind.CARD_NUMBER, "card "),
        ("card 5500-0000-0000-0004", PiiKind.CARD_NUMBER, "card "),
        ("amex 378282246310005", PiiKind.CARD_NUMBER, "amex "),
        ("key sk-proj-AbCdEf0123456789GhIjKl", PiiKind.API_KEY, "key "),
        ("use nvapi-abcdefghijklmnopqrstuvwxyz012345", PiiKind.API_KEY, "use "),
        ("aws AKIAIOSFODNN7EXAMPLE here", PiiKind.API_KEY, "aws "),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", PiiKind.API_KEY, "gh "),
        ('config api_key="x9f8e7d6c5b4a3z2y1"', PiiKind.API_KEY, "config api_key="),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            PiiKind.BEARER_TOKEN,
            "Bearer ",
        ),
        ("my SSN is 123-45-6789.", PiiKind.SSN, "my SSN is "),
        ("from 192.168.10.4 yesterday", PiiKind.IP_ADDRESS, "from "),
    ],
)
def test_each_kind_is_found_counted_and_replaced(text: str, kind: PiiKind, kept: str) -> None:
    redacted, found = _redact(text)
    assert found == Counter({kind: 1}), redacted
    assert placeholder(kind) in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "order ORD-109652 ships on 2025-01-06 09:00 UTC",
        "tracking number 7467188137 and 1Z999AA10123456784",
        "it costs $1,299.00 or 1 299,00 EUR",
        "created 1736154000123 at 2025-01-06T09:00:00.000Z, on 06.01.2025 10:30",
        "card-like but fails Luhn: 4111 1111 1111 1112",
        "octets over 255 are no address: 300.1.2.3",
        "version 1.2.3.4567 and 999.1.1.1",
        "an @mention and user@localhost",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert _redact(text) == (text, Counter())


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_only_chosen_kinds_are_redacted() -> None:
    redacted, found = _redact("a@b.io or +1 415-555-0123 at 10.2.3.4", Redactor({PiiKind.EMAIL}))
    assert redacted == "[REDACTED:email] or +1 415-555-0123 at 10.2.3.4"
    assert found == Counter({PiiKind.EMAIL: 1})


def test_a_record_is_scanned_everywhere_but_its_identity_and_tool_schemas() -> None:
    record: dict[str, Any] = {
        "workload_id": "a@b.io",  # identifiers are not scanned, even if they look like PII
        "client_id": "acme",
        "timestamp": "2025-01-06T09:00:00.000Z",
        "request": {
            "messages": [{"role": "user", "content": "I am jo@example.com"}],
            "tools": [{"type": "function", "function": {"name": "f", "description": "x@y.io"}}],
        },
        "response": {
            "choices": [
                {
                    "message": {
                        "tool_calls": [
                            {"function": {"name": "f", "arguments": {"phone": "+1 415-555-0123"}}}
                        ]
                    }
                }
            ]
        },
        "metadata": {"notes": ["card 4111111111111111"]},
    }
    original_messages = record["request"]["messages"]
    found = EVERYTHING.redact(record)
    assert found == Counter({PiiKind.EMAIL: 1, PiiKind.PHONE: 1, PiiKind.CARD_NUMBER: 1})
    assert record["workload_id"] == "a@b.io"
    assert record["request"]["tools"][0]["function"]["description"] == "x@y.io"
    assert record["request"]["messages"][0]["content"] == "I am [REDACTED:email]"
    arguments = record["response"]["choices"][0]["message"]["tool_calls"][0]["function"]
    assert arguments["arguments"] == {"phone": "[REDACTED:phone]"}
    assert record["metadata"] == {"notes": ["card [REDACTED:card_number]"]}
    assert original_messages[0]["content"] == "I am jo@example.com", "nested data is rebuilt"


def test_generated_traffic_loses_its_emails_and_phones() -> None:
    records = list(generate_records(400, seed=6))
    total: Counter[PiiKind] = Counter()
    for record in records:
        total += EVERYTHING.redact(record)
    text = json.dumps([{k: r[k] for k in ("request", "response")} for r in records])
    assert total[PiiKind.EMAIL] > 10 and total[PiiKind.PHONE] > 10, total
    for domain in ("gmail.com", "outlook.com", "proton.me"):
        assert f"@{domain}" not in text
    assert "555-0" not in text
