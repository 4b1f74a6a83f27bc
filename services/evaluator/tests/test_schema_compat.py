"""The tool-schema compatibility rewrite: regex shorthands in `pattern` spelled out as classes,
escaped backslashes and character classes respected, nothing but `pattern` strings touched."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from flywheel_evaluator.schema_compat import compat_tools, rewrite_pattern, rewrite_schema

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param(r"^\d{5}$", r"^[0-9]{5}$", id="digit"),
        pytest.param(r"\D+", r"[^0-9]+", id="non-digit"),
        pytest.param(r"^\w+$", r"^[A-Za-z0-9_]+$", id="word"),
        pytest.param(r"\W", r"[^A-Za-z0-9_]", id="non-word"),
        pytest.param(r"a\sb", r"a[ \t\n\r\x0C\x0B]b", id="space"),
        pytest.param(r"\S+", r"[^ \t\n\r\x0C\x0B]+", id="non-space"),
        pytest.param(r"^\\d$", r"^\\d$", id="escaped-backslash-then-d-stays"),
        pytest.param(r"\\\d", r"\\[0-9]", id="escaped-backslash-then-digit"),
        pytest.param(r"[\d-]+", r"[0-9-]+", id="digit-inside-a-class"),
        pytest.param(r"[^\s,]", r"[^ \t\n\r\x0C\x0B,]", id="space-inside-a-negated-class"),
        pytest.param(r"[\w.\d]", r"[A-Za-z0-9_.0-9]", id="two-inside-one-class"),
        pytest.param(r"[\D]", r"[^0-9]", id="class-of-one-negated-shorthand"),
        pytest.param(r"[^\W]", r"[A-Za-z0-9_]", id="negated-class-of-one-negated-shorthand"),
        pytest.param(r"[\W_]", r"[\W_]", id="negated-shorthand-among-others-stays"),
        pytest.param(r"[\]\d]", r"[\]0-9]", id="escaped-bracket-does-not-close-the-class"),
        pytest.param(r"\d[a-z]\d", r"[0-9][a-z][0-9]", id="around-a-class"),
        pytest.param(r"\bfoo\.\u0041", r"\bfoo\.\u0041", id="other-escapes-stay"),
        pytest.param(r"[\d", r"[\d", id="unterminated-class-stays"),
        pytest.param("trailing\\", "trailing\\", id="lone-trailing-backslash"),
        pytest.param(r"^[A-Z]{3}-\d{4}$", r"^[A-Z]{3}-[0-9]{4}$", id="mixed"),
    ],
)
def test_shorthands_are_spelled_out(pattern: str, expected: str) -> None:
    assert rewrite_pattern(pattern) == expected


@pytest.mark.parametrize(
    "pattern", [r"^\d{3}-\w+$", r"[\d-]+\s\S", r"[^\s,]+", r"\\d\W", r"[\D]x", r"[^\W]"]
)
@pytest.mark.parametrize(
    "text", ["123-abc", "12-3 x", "a,b", "\\d!", "5x", "_", "a b", "ab", "1\f2", "a\vb", "\u00a0"]
)
def test_a_rewritten_pattern_matches_what_the_original_matched(pattern: str, text: str) -> None:
    """Same strings (with ASCII shorthands, which is what ECMA's \\d and \\w are)."""
    # Python's `re` reads ASCII shorthands like ECMA's \d and \w with re.ASCII.
    original = re.fullmatch(pattern, text, re.ASCII) is not None
    assert (re.fullmatch(rewrite_pattern(pattern), text) is not None) == original


def test_every_pattern_in_a_schema_is_rewritten_and_nothing_else() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "description": r"a \d in prose stays",
        "properties": {
            "zip": {"type": "string", "pattern": r"^\d{5}$"},
            "pattern": {"type": "string", "pattern": r"\w+"},  # a property named `pattern`
            "enum": {"type": "string", "pattern": r"\s"},  # a property named `enum`
            "items": {
                "type": "array",
                "items": {"anyOf": [{"type": "string", "pattern": r"\D"}, {"type": "null"}]},
            },
            "code": {
                "type": "string",
                "default": r"\d",
                "examples": [{"pattern": r"\d"}],
                "enum": [r"\d"],
            },
        },
        "$defs": {"id": {"pattern": r"^id-\d+$"}},
        "required": ["zip", "pattern"],
    }
    before = copy.deepcopy(schema)
    rewritten = rewrite_schema(schema)

    assert schema == before, "the input is not changed"
    properties = rewritten["properties"]
    assert properties["zip"]["pattern"] == r"^[0-9]{5}$"
    assert properties["pattern"]["pattern"] == r"[A-Za-z0-9_]+"
    assert properties["enum"]["pattern"] == r"[ \t\n\r\x0C\x0B]"
    assert properties["items"]["items"]["anyOf"][0]["pattern"] == r"[^0-9]"
    assert properties["code"] == before["properties"]["code"], "data values stay"
    assert rewritten["$defs"]["id"]["pattern"] == r"^id-[0-9]+$"
    assert rewritten["description"] == before["description"]
    assert rewritten["required"] == ["zip", "pattern"]


def test_tools_have_their_parameters_rewritten() -> None:
    tools: list[dict[str, Any]] = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": r"find \d",
                "parameters": {"type": "object", "properties": {"n": {"pattern": r"\d"}}},
            },
        },
        {"type": "function", "function": {"name": "no_parameters"}},
    ]
    rewritten = compat_tools(tools)
    assert rewritten[0]["function"]["parameters"]["properties"]["n"]["pattern"] == "[0-9]"
    assert rewritten[0]["function"]["description"] == r"find \d"
    assert rewritten[1] == tools[1]
    assert tools[0]["function"]["parameters"]["properties"]["n"]["pattern"] == r"\d"


def test_the_rewrite_uses_only_escapes_a_grammar_parser_accepts() -> None:
    r"""llama.cpp's grammar parser knows \t \n \r \xNN \uNNNN and escaped quotes, brackets and
    backslashes, and refuses the rest (\f and \v included): the rewrite is for it."""
    patterns = (
        [f"\\{s}" for s in "dDwWsS"] + [f"[\\{s}x]" for s in "dws"] + [f"[\\{s}]" for s in "DWS"]
    )
    for pattern in patterns:
        rewritten = rewrite_pattern(pattern)
        assert set(re.findall(r"\\(.)", rewritten)) <= set("tnrx"), (pattern, rewritten)
