"""The request's `tools` list, parsed once per distinct list into typed specs."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    type: str
    description: str
    enum: tuple[str, ...]
    required: bool
    item_type: str | None
    format: str | None
    pattern: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    params: tuple[ParamSpec, ...]

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "string")
    if isinstance(kind, list):  # ["string", "null"]
        kind = next((k for k in kind if k != "null"), "string")
    return str(kind)


def _compile(pattern: Any) -> re.Pattern[str] | None:
    """The schema's pattern, unanchored so it can find the value inside a sentence."""
    if not isinstance(pattern, str) or not pattern:
        return None
    try:
        return re.compile(pattern.removeprefix("^").removesuffix("$"))
    except re.error:
        return None


def _parse_tool(tool: dict[str, Any]) -> ToolSpec | None:
    fn = tool.get("function", tool)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        return None
    parameters = fn.get("parameters") or {}
    properties = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    params = []
    for pname, schema in properties.items():
        if not isinstance(schema, dict):
            schema = {}
        items = schema.get("items")
        params.append(
            ParamSpec(
                name=str(pname),
                type=_type_of(schema),
                description=str(schema.get("description") or ""),
                enum=tuple(str(v) for v in schema.get("enum") or ()),
                required=pname in required,
                item_type=_type_of(items) if isinstance(items, dict) else None,
                format=schema.get("format"),
                pattern=_compile(schema.get("pattern")),
            )
        )
    return ToolSpec(
        name=fn["name"], description=str(fn.get("description") or ""), params=tuple(params)
    )


class ToolsCache:
    """Parsed tools by their canonical JSON. Traffic reuses a handful of tool lists, so the
    parse (and everything derived from it, see chooser.py) happens once per list."""

    def __init__(self, maxsize: int = 256) -> None:
        self._maxsize = maxsize
        self._entries: OrderedDict[bytes, tuple[ToolSpec, ...]] = OrderedDict()

    def get(self, tools: list[dict[str, Any]]) -> tuple[bytes, tuple[ToolSpec, ...]]:
        key = orjson.dumps(tools, option=orjson.OPT_SORT_KEYS)
        specs = self._entries.get(key)
        if specs is None:
            specs = tuple(s for t in tools if isinstance(t, dict) and (s := _parse_tool(t)))
            self._entries[key] = specs
            if len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return key, specs
