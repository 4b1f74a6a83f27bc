"""Tool-call comparison: function-name accuracy and name-and-arguments exact match.

Arguments are compared as parsed JSON, so key order, whitespace and whether `arguments` was sent
as a JSON string or as an object do not matter; numbers compare by value (1 == 1.0, but
True != 1), strings exactly. A record's calls form a multiset: parallel calls may come in any
order, but a missing, extra or repeated call is a mismatch.
"""

import json
import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

CanonicalValue = Hashable


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call, with its arguments in canonical (hashable, order-free) form."""

    name: str
    arguments: CanonicalValue


class _Unparsable:
    """Arguments that are not JSON: equal to nothing, not even another unparsable value."""

    __slots__ = ("raw",)

    def __init__(self, raw: str) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"<unparsable {self.raw[:40]!r}>"


def canonical(value: Any) -> CanonicalValue:
    """A hashable form of a JSON value in which equal meanings are equal."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return ("f", repr(value))
        return ("#", Fraction(value))
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, dict):
        return ("o", tuple(sorted((str(k), canonical(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("a", tuple(canonical(item) for item in value))
    return ("?", repr(value))


def canonical_arguments(arguments: Any) -> CanonicalValue:
    """`function.arguments` as sent: a JSON string, an object, empty or absent."""
    if arguments is None or arguments == "":
        return canonical({})
    if isinstance(arguments, str):
        try:
            return canonical(json.loads(arguments))
        except ValueError:
            return _Unparsable(arguments)
    return canonical(arguments)


def parse_tool_calls(raw: Any) -> list[ToolCall]:
    """The calls of an OpenAI message's `tool_calls` (None, [] or a list of call objects).

    Entries without a string function name are dropped: they cannot match any reference call,
    and dropping them makes the multiset comparison count them as missing.
    """
    if not isinstance(raw, list):
        return []
    calls: list[ToolCall] = []
    for entry in raw:
        function = entry.get("function", entry) if isinstance(entry, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            calls.append(ToolCall(function["name"], canonical_arguments(function.get("arguments"))))
    return calls


def names_match(reference: Sequence[ToolCall], predicted: Sequence[ToolCall]) -> bool:
    """Same function names, each as many times (order free)."""
    return Counter(c.name for c in reference) == Counter(c.name for c in predicted)


def calls_match(reference: Sequence[ToolCall], predicted: Sequence[ToolCall]) -> bool:
    """Same calls, names and arguments, each as many times (order free)."""
    return Counter(reference) == Counter(predicted)
