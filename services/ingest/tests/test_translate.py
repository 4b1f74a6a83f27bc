"""A source-topic line of any format: dispatched by its header, refused with a reason when it
cannot become a record, checked like any record when it can."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import ProducerSettings
from flywheel_ingest.producers import Format, Untranslatable, translate
from flywheel_ingest.validation import LogRecord, Refusal

pytestmark = pytest.mark.unit

SETTINGS = ProducerSettings()
LIMIT = 65_536

RECORD: dict[str, Any] = {
    "workload_id": "w",
    "client_id": "c",
    "timestamp": 1736154000,
    "request": {"messages": [{"role": "user", "content": "hi"}]},
    "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}]},
}


def test_a_line_without_a_format_is_a_record() -> None:
    outcome = translate.verdict(orjson.dumps(RECORD), Format.RECORD, SETTINGS, LIMIT)
    assert isinstance(outcome, LogRecord)
    assert outcome.workload_id == "w"


def test_an_unknown_format_is_refused_naming_the_known_ones() -> None:
    outcome = translate.verdict(b"{}", "zipkin", SETTINGS, LIMIT)
    assert isinstance(outcome, Refusal)
    assert outcome.reason is RejectReason.NOT_OPENAI_FORMAT
    assert outcome.message.startswith("unknown line format 'zipkin' (known: record, nat,")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{broken", RejectReason.INVALID_JSON),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT),
        (b"{}" + b" " * LIMIT, RejectReason.OVERSIZE),
    ],
)
def test_an_item_that_is_not_a_json_object_is_refused_before_translation(
    value: bytes, reason: RejectReason
) -> None:
    outcome = translate.verdict(value, Format.NAT, SETTINGS, LIMIT)
    assert isinstance(outcome, Refusal)
    assert outcome.reason is reason


def test_a_translated_record_is_validated_like_any_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_answer(item: dict[str, Any], settings: ProducerSettings) -> dict[str, Any]:
        return {**RECORD, "response": {"choices": []}}

    monkeypatch.setitem(translate._TRANSLATORS, Format.NAT, no_answer)
    outcome = translate.verdict(b"{}", Format.NAT, SETTINGS, LIMIT)
    assert isinstance(outcome, Refusal)
    assert outcome.reason is RejectReason.EMPTY_CHOICES


def test_an_untranslatable_item_is_refused_with_its_format_and_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def incomplete(item: dict[str, Any], settings: ProducerSettings) -> dict[str, Any]:
        raise Untranslatable(RejectReason.INCOMPLETE_CALL, "no output messages")

    monkeypatch.setitem(translate._TRANSLATORS, Format.OTLP_SPAN, incomplete)
    outcome = translate.verdict(b"{}", Format.OTLP_SPAN, SETTINGS, LIMIT)
    assert outcome == Refusal(RejectReason.INCOMPLETE_CALL, "otlp-span: no output messages")
