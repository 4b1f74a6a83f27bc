"""The tool-schema compatibility rewrite (`evaluation.tool_schema_compat`).

Servers that compile JSON schemas into a sampling grammar (llama.cpp's server) refuse regex
shorthands in a schema's `pattern`. With the run's `evaluation.tool_schema_compat` on, every
candidate (so that all are compared on the same request) is sent tools whose `pattern` strings,
at any depth of each tool's `function.parameters`, spell the shorthands out:

    \\d -> [0-9]        \\D -> [^0-9]
    \\w -> [A-Za-z0-9_] \\W -> [^A-Za-z0-9_]
    \\s -> [ \\t\\n\\r\\x0C\\x0B] \\S -> [^ \\t\\n\\r\\x0C\\x0B]

(form feed and vertical tab, `\\f` and `\\v`, are written as the hex escapes `\\x0C` and
`\\x0B`, which mean the same in ECMA-262 and Python regexes: llama.cpp's grammar parser, the
reason for the rewrite, refuses `\\f` and `\\v` as it refuses `\\d`.)

The patterns match the same strings as before (ASCII `\\d` and `\\w`, as JSON Schema's ECMA-262
regexes define them; `\\s` loses ECMA's Unicode spaces, which tool arguments hardly hold).

- An escaped backslash stays what it is: `\\\\d` is a literal backslash followed by `d`.
- Inside a character class the positive shorthands are spelled without brackets of their own:
  `[\\d-]` -> `[0-9-]`, `[^\\s,]` -> `[^ \\t\\n\\r\\x0C\\x0B,]`. A class holding only a negated one
  becomes its complement: `[\\D]` -> `[^0-9]`, `[^\\W]` -> `[A-Za-z0-9_]`. A negated shorthand
  next to other members of a class (`[\\W_]`) has no spelling without nested classes and is left
  as it is; so are every other escape, and a class that never closes.
- Only string values of `pattern` keywords change. Values given as data (`enum`, `const`,
  `default`, `examples`) are left alone even when they hold a `pattern` key, and properties
  named `pattern` stay schemas; `patternProperties` names are not rewritten.
"""

from typing import Any

# \f and \v as hex escapes: llama.cpp's grammar parser knows only \t, \n, \r, \xNN, \uNNNN
# (and escaped quotes, brackets and backslashes) inside a class, and refuses the rest.
_SPACES = " \\t\\n\\r\\x0C\\x0B"
_OUTSIDE = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "w": "[A-Za-z0-9_]",
    "W": "[^A-Za-z0-9_]",
    "s": f"[{_SPACES}]",
    "S": f"[^{_SPACES}]",
}
_IN_CLASS = {"d": "0-9", "w": "A-Za-z0-9_", "s": _SPACES}
_NEGATED = {"D": "d", "W": "w", "S": "s"}

# Keywords whose value is data, not a schema.
_DATA = frozenset({"enum", "const", "default", "examples", "example"})
# Keywords whose value maps names to schemas: the names are not keywords.
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)


def rewrite_pattern(pattern: str) -> str:
    """`pattern` with its regex shorthands spelled out as explicit classes."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            escape = pattern[i + 1]
            out.append(_OUTSIDE.get(escape, pattern[i : i + 2]))
            i += 2
        elif char == "[":
            end = _class_end(pattern, i)
            if end is None:  # unterminated: invalid anyway, and the server will say so
                out.append(pattern[i:])
                break
            out.append(_rewrite_class(pattern[i + 1 : end]))
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int | None:
    """The index of the `]` closing the class opened at `start` (ECMA-262: the first unescaped
    `]`, so `[]` is an empty class)."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i
        i += 1
    return None


def _rewrite_class(body: str) -> str:
    """`[body]` rewritten; `body` is what lies between the brackets."""
    negated = body.startswith("^")
    members = body[1:] if negated else body
    if len(members) == 2 and members[0] == "\\" and members[1] in _NEGATED:
        positive = _IN_CLASS[_NEGATED[members[1]]]
        return f"[{positive}]" if negated else f"[^{positive}]"
    out: list[str] = []
    i = 0
    while i < len(members):
        if members[i] == "\\" and i + 1 < len(members):
            escape = members[i + 1]
            out.append(_IN_CLASS.get(escape, members[i : i + 2]))
            i += 2
        else:
            out.append(members[i])
            i += 1
    return "[" + ("^" if negated else "") + "".join(out) + "]"


def rewrite_schema(schema: Any) -> Any:
    """A copy of a JSON schema with every `pattern` rewritten (the input is not changed)."""
    if isinstance(schema, list):
        return [rewrite_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    rewritten: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "pattern" and isinstance(value, str):
            rewritten[key] = rewrite_pattern(value)
        elif key in _DATA:
            rewritten[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            rewritten[key] = {name: rewrite_schema(sub) for name, sub in value.items()}
        else:
            rewritten[key] = rewrite_schema(value)
    return rewritten


def compat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI `tools` with each function's `parameters` schema rewritten; anything else (and a
    tool of another shape) as it was."""
    result: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and "parameters" in function:
            function = {**function, "parameters": rewrite_schema(function["parameters"])}
            tool = {**tool, "function": function}
        result.append(tool)
    return result
