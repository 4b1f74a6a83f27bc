"""Broken lines carry the reason a validator following ``reasons``' precedence finds in them."""

import datetime as dt
import json
from collections import Counter
from typing import Any

import pytest

from flywheel_contracts.traffic import (
    CHAT,
    RejectReason,
    TrafficConfig,
    generate_lines,
    malformed_lines,
)
from flywheel_contracts.traffic.malformed import DEFECT_COUNT, LINE_REASONS, MIN_MAX_LINE_BYTES

pytestmark = pytest.mark.unit

LIMIT = MIN_MAX_LINE_BYTES
REQUIRED = ("workload_id", "client_id", "timestamp", "request", "response")
LAST_MS = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp() * 1000


def valid_timestamp(value: int | float | str) -> bool:
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).year >= 1970
        except ValueError:
            return False
    # Seconds or milliseconds: either reading must land in 1970..9999.
    return 0 <= value <= LAST_MS


def is_openai(record: dict[str, Any]) -> bool:
    messages = record["request"].get("messages")
    choices = record["response"].get("choices")
    return (
        isinstance(messages, list)
        and all(isinstance(m, dict) and "role" in m for m in messages)
        and isinstance(choices, list)
        and all(isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices)
    )


def arguments_ok(record: dict[str, Any]) -> bool:
    for choice in record["response"]["choices"]:
        for call in choice["message"].get("tool_calls") or ():
            arguments = call["function"]["arguments"]
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    return False
            if not isinstance(arguments, dict):
                return False
    return True


def classify(line: str) -> RejectReason | None:
    """A reference validator, written from the precedence in ``reasons``' docstring."""
    if len(line.encode()) > LIMIT:
        return RejectReason.OVERSIZE
    try:
        record = json.loads(line)
    except ValueError:
        return RejectReason.INVALID_JSON
    if not isinstance(record, dict):
        return RejectReason.NOT_AN_OBJECT
    if any(field not in record for field in REQUIRED):
        return RejectReason.MISSING_FIELD
    timestamp = record["timestamp"]
    if (
        not all(isinstance(record[f], str) for f in ("workload_id", "client_id"))
        or not all(isinstance(record[f], dict) for f in ("request", "response"))
        or isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float | str)
    ):
        return RejectReason.WRONG_TYPE
    if not valid_timestamp(timestamp):
        return RejectReason.INVALID_TIMESTAMP
    if record["request"].get("messages") == []:
        return RejectReason.EMPTY_MESSAGES
    if record["response"].get("choices") == []:
        return RejectReason.EMPTY_CHOICES
    if not is_openai(record):
        return RejectReason.NOT_OPENAI_FORMAT
    for choice in record["response"]["choices"]:
        calls, content = choice["message"].get("tool_calls"), choice["message"].get("content")
        if choice.get("finish_reason") == "tool_calls" and not calls:
            return RejectReason.TOOL_CALLS_MISSING
        if not calls and not (isinstance(content, str) and content.strip()):
            return RejectReason.EMPTY_RESPONSE
    if not arguments_ok(record):
        return RejectReason.INVALID_TOOL_ARGUMENTS
    return None


def test_the_reference_validator_accepts_valid_traffic() -> None:
    assert {classify(line) for line in generate_lines(2000, 4)} == {None}


@pytest.mark.parametrize(
    "config",
    [None, TrafficConfig(workloads=(CHAT,), timestamp_format="iso", metadata=False)],
)
def test_each_line_is_broken_exactly_as_labelled(config: TrafficConfig | None) -> None:
    for line, reason in malformed_lines(600, 11, max_line_bytes=LIMIT, config=config):
        assert classify(line) == reason, (reason, line[:300])


def test_every_reason_appears_in_any_run_of_defect_count_lines() -> None:
    for seed in range(5):
        reasons = {
            reason for _, reason in malformed_lines(DEFECT_COUNT, seed, max_line_bytes=LIMIT)
        }
        assert reasons == LINE_REASONS


def test_malformed_lines_are_deterministic_and_single_lines() -> None:
    lines = list(malformed_lines(300, 3, max_line_bytes=LIMIT))
    assert lines == list(malformed_lines(300, 3, max_line_bytes=LIMIT))
    assert lines != list(malformed_lines(300, 4, max_line_bytes=LIMIT))
    assert all(line.strip() and "\n" not in line for line, _ in lines)
    counts = Counter(reason for _, reason in lines)
    assert counts[RejectReason.INVALID_JSON] > counts[RejectReason.OVERSIZE] > 0


def test_oversize_lines_are_just_over_the_limit() -> None:
    limit = 100_000
    sizes = [
        len(line.encode())
        for line, r in malformed_lines(150, 1, max_line_bytes=limit)
        if r == RejectReason.OVERSIZE
    ]
    assert sizes and all(limit < size <= limit + 1024 for size in sizes)


def test_a_limit_below_record_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_line_bytes must be >= 65536"):
        malformed_lines(1, 0, max_line_bytes=MIN_MAX_LINE_BYTES - 1)
