"""Broken log lines, each labelled with the reason ingest must reject it for.

Every line is a generated record with exactly one defect, chosen so that the defect decides the
reason under the precedence documented in ``reasons``. The defects are dealt in shuffled rounds,
so any ``n`` at least the number of defects yields every reason.
"""

import json
from collections.abc import Callable, Iterator
from random import Random
from typing import Any, Final

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.traffic.records import TrafficConfig, generate_lines

DEFAULT_MAX_LINE_BYTES: Final = 262_144
"""Ingest's default line limit. The shipper's and the broker's message limits must be larger, or
oversize lines never reach ingest."""
MIN_MAX_LINE_BYTES: Final = 65_536
"""Well above the largest generated record, so only the oversize defect trips the limit."""

Record = dict[str, Any]
Defect = Callable[[Random, Record, str, int], str]
"""(rng, record parsed from a valid line, that line, the line limit) -> a broken line."""

_REQUIRED: Final = ("workload_id", "client_id", "timestamp", "request", "response")
_PASTED_LOG: Final = "ERROR 500 checkout/payment step=3 retry=1 session=ab12cd34; "

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _truncated(rng: Random, record: Record, line: str, limit: int) -> str:
    # The outer object closes on the last character, so any shorter prefix is broken.
    return line[: rng.randrange(1, len(line) - 1)]


def _python_repr(rng: Random, record: Record, line: str, limit: int) -> str:
    return repr(record)  # a logger that printed the dict instead of dumping JSON


def _trailing_comma(rng: Random, record: Record, line: str, limit: int) -> str:
    return line[:-1] + ",}"


def _unquoted_key(rng: Random, record: Record, line: str, limit: int) -> str:
    return line.replace('"client_id"', "client_id", 1)


def _not_json(rng: Random, record: Record, line: str, limit: int) -> str:
    return rng.choice(
        (
            "<html><head><title>502 Bad Gateway</title></head></html>",
            f"{record['workload_id']} {record['client_id']} request failed",
            "Traceback (most recent call last):",
        )
    )


def _array(rng: Random, record: Record, line: str, limit: int) -> str:
    return _encode([record])


def _scalar(rng: Random, record: Record, line: str, limit: int) -> str:
    return rng.choice(('"hello"', "42", "null", "true", _encode(record["workload_id"])))


def _missing_field(rng: Random, record: Record, line: str, limit: int) -> str:
    del record[rng.choice(_REQUIRED)]
    return _encode(record)


def _wrong_type(rng: Random, record: Record, line: str, limit: int) -> str:
    field = rng.choice(_REQUIRED)
    if field == "workload_id":
        record[field] = rng.randrange(1, 1000)
    elif field == "request":
        record[field] = _encode(record[field])  # double-encoded by the application
    else:
        record[field] = [record[field]]
    return _encode(record)


def _invalid_timestamp(rng: Random, record: Record, line: str, limit: int) -> str:
    record["timestamp"] = rng.choice(
        ("yesterday", "2025-02-30T10:00:00Z", "", "13/45/2025 25:61", 10**20)
    )
    return _encode(record)


def _empty_messages(rng: Random, record: Record, line: str, limit: int) -> str:
    record["request"]["messages"] = []
    return _encode(record)


def _empty_choices(rng: Random, record: Record, line: str, limit: int) -> str:
    record["response"]["choices"] = []
    return _encode(record)


def _not_openai(rng: Random, record: Record, line: str, limit: int) -> str:
    request, response = record["request"], record["response"]
    variant = rng.randrange(5)
    if variant == 0:
        del request["messages"]
    elif variant == 1:
        request["messages"] = request["messages"][-1]["content"]  # a bare prompt string
    elif variant == 2:
        request["messages"] = [{"content": m["content"]} for m in request["messages"]]
    elif variant == 3:
        response["choices"] = [
            {"index": 0, "text": "Sure.", "finish_reason": "stop"}
        ]  # legacy completions
    else:
        record["response"] = {"output": "Sure.", "model": response["model"]}
    return _encode(record)


def _bad_tool_arguments(rng: Random, record: Record, line: str, limit: int) -> str:
    message = record["response"]["choices"][0]["message"]
    arguments = rng.choice(('{"order_id": "ORD-12', "[1, 2]", 42, "order_id=ORD-123456"))
    call = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "get_order_status", "arguments": arguments},
    }
    message["content"], message["tool_calls"] = None, [call, *message.get("tool_calls", ())]
    return _encode(record)


def _tool_calls_missing(rng: Random, record: Record, line: str, limit: int) -> str:
    # An exporter that dropped the calls and kept the finish reason.
    choice = record["response"]["choices"][0]
    choice["message"]["tool_calls"] = rng.choice(([], None))
    choice["message"]["content"] = choice["message"].get("content") or "Let me check that."
    choice["finish_reason"] = "tool_calls"
    return _encode(record)


def _empty_response(rng: Random, record: Record, line: str, limit: int) -> str:
    choice = record["response"]["choices"][0]
    choice["message"] = {"role": "assistant", "content": rng.choice(("", "  ", None))}
    choice["finish_reason"] = "stop"
    return _encode(record)


def _oversize(rng: Random, record: Record, line: str, limit: int) -> str:
    # A customer pasting a huge log: valid in every other way, just too long.
    excess = limit - len(line.encode()) + rng.randint(1, 1024)
    paste = (_PASTED_LOG * (excess // len(_PASTED_LOG) + 1))[:excess]
    record["request"]["messages"][-1]["content"] += paste
    return _encode(record)


_DEFECTS: Final[tuple[tuple[Defect, RejectReason], ...]] = (
    (_oversize, RejectReason.OVERSIZE),
    (_truncated, RejectReason.INVALID_JSON),
    (_python_repr, RejectReason.INVALID_JSON),
    (_trailing_comma, RejectReason.INVALID_JSON),
    (_unquoted_key, RejectReason.INVALID_JSON),
    (_not_json, RejectReason.INVALID_JSON),
    (_array, RejectReason.NOT_AN_OBJECT),
    (_scalar, RejectReason.NOT_AN_OBJECT),
    (_missing_field, RejectReason.MISSING_FIELD),
    (_wrong_type, RejectReason.WRONG_TYPE),
    (_invalid_timestamp, RejectReason.INVALID_TIMESTAMP),
    (_empty_messages, RejectReason.EMPTY_MESSAGES),
    (_empty_choices, RejectReason.EMPTY_CHOICES),
    (_not_openai, RejectReason.NOT_OPENAI_FORMAT),
    (_bad_tool_arguments, RejectReason.INVALID_TOOL_ARGUMENTS),
    (_tool_calls_missing, RejectReason.TOOL_CALLS_MISSING),
    (_empty_response, RejectReason.EMPTY_RESPONSE),
)
DEFECT_COUNT: Final = len(_DEFECTS)
"""Any ``n`` of at least this many lines covers every reason."""
LINE_REASONS: Final = frozenset(reason for _, reason in _DEFECTS)
"""The reasons one record line can be refused for on its own; the others concern a producer's
items (an unpaired event, an incomplete span) or a line's neighbours (a call exported twice)."""


def malformed_lines(
    n: int,
    seed: int,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    config: TrafficConfig | None = None,
) -> Iterator[tuple[str, RejectReason]]:
    """``n`` broken lines (no newline) with the reason each must be rejected for, lazily.

    They are broken copies of traffic generated with ``config``, so they name the same
    workloads and clients as the valid lines around them. Arguments are checked at the call,
    not at the first line drawn.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if max_line_bytes < MIN_MAX_LINE_BYTES:
        raise ValueError(f"max_line_bytes must be >= {MIN_MAX_LINE_BYTES}")
    # Other traffic than the valid lines of the same seed.
    return _broken(generate_lines(n, seed + 1, config), Random(seed), max_line_bytes)


def _broken(
    lines: Iterator[str], rng: Random, max_line_bytes: int
) -> Iterator[tuple[str, RejectReason]]:
    deck: list[tuple[Defect, RejectReason]] = []
    for line in lines:
        if not deck:
            deck = list(_DEFECTS)
            rng.shuffle(deck)
        defect, reason = deck.pop()
        yield defect(rng, json.loads(line), line, max_line_bytes), reason
