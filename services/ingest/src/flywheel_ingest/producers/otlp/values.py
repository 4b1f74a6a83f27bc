"""Attribute values as the conventions write them, read leniently.

Producers put JSON documents and numbers inside string attributes, and flatten nested messages
and tool calls into numbered attribute names (`llm.input_messages.0.message.role`); every reader
of a span has to undo that the same way, or one convention's reading would drift from another's.
"""

from collections.abc import Mapping
from typing import Any

import orjson


def parsed_json(value: Any) -> Any:
    """A JSON document held in a string attribute, parsed; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def indexed(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Flattened `prefix{i}.a.b` attributes as a list (by i) of nested dicts, in which numbered
    levels (`tool_calls.{j}`) are lists too."""
    tree: dict[str, Any] = {}
    for key, value in attrs.items():
        if key.startswith(prefix):
            _insert(tree, key[len(prefix) :].split("."), value)
    return [entry for entry in _listed(tree) if isinstance(entry, dict)]


def _insert(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for step in path[:-1]:
        child = node.get(step)
        if not isinstance(child, dict):
            child = node[step] = {}
        node = child
    node[path[-1]] = value


def _listed(node: dict[str, Any]) -> list[Any]:
    # Sorted by key alone: two keys of one number ("1", "01") keep the span's order.
    numbered = sorted((key for key in node if _is_number(key)), key=_number_order)
    return [_lists(node[key]) for key in numbered]


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(_is_number(key) for key in node):
        return _listed(node)
    return {key: _lists(value) for key, value in node.items()}


def _is_number(key: str) -> bool:
    """A numbered level: ASCII digits only (`str.isdigit` also takes "²" and "٣", which int()
    refuses)."""
    return key.isascii() and key.isdigit()


def _number_order(key: str) -> tuple[int, str]:
    """The order of the numbers `key`s write, without int(), which refuses more than 4300
    digits."""
    digits = key.lstrip("0")
    return len(digits), digits
