"""PII redaction scope: only the configured workloads and kinds (what counts as personal data is
flywheel_contracts.pii, tested there)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from flywheel_contracts.pii import PiiKind
from flywheel_ingest.config import PiiSettings
from flywheel_ingest.pii import Redactor

pytestmark = pytest.mark.unit


def _chat(text: str) -> dict[str, Any]:
    return {"request": {"messages": [{"role": "user", "content": text}]}}


def test_only_configured_kinds_are_redacted() -> None:
    emails_only = Redactor(
        PiiSettings(workloads=frozenset({"*"}), kinds=frozenset({PiiKind.EMAIL}))
    )
    record = _chat("a@b.io or +1 415-555-0123")
    found = emails_only.redact(record)
    assert record["request"]["messages"][0]["content"] == "[REDACTED:email] or +1 415-555-0123"
    assert found == Counter({PiiKind.EMAIL: 1})


def test_by_default_the_kinds_of_the_issue_are_redacted() -> None:
    assert PiiSettings().kinds == {
        PiiKind.EMAIL,
        PiiKind.PHONE,
        PiiKind.CARD_NUMBER,
        PiiKind.API_KEY,
        PiiKind.BEARER_TOKEN,
    }


def test_only_configured_workloads_are_redacted() -> None:
    settings = PiiSettings(workloads=frozenset({"customer-service-chat"}))
    redactor = Redactor(settings)
    assert redactor.applies_to("customer-service-chat")
    assert not redactor.applies_to("order-tools")
    assert not Redactor(PiiSettings()).applies_to("order-tools")
    assert not Redactor(PiiSettings(workloads=frozenset({"*"}), kinds=frozenset())).applies_to("x")
