"""Telling a server that cannot handle the tool schemas from any other refused request.

Servers that compile a request's JSON schemas into a sampling grammar (llama.cpp's server, and
others built on grammars) answer HTTP 400 to a schema they cannot compile: a `pattern` using
`\\d`, say. Every record of the evaluation carries the same kind of schema, so this is no failed
record but a finding about the server: the evaluation ends with `schema_refused` and says what
to do about it (`evaluation.tool_schema_compat`, see schema_compat.py).

The servers' wording varies, so the test is tolerant: a 400, to a request that carried `tools`,
whose body mentions a schema, a grammar, a pattern or a regex.
"""

import re

_SCHEMA_WORDS = re.compile(r"grammar|schema|pattern|regex|regular expression", re.IGNORECASE)
QUOTE_CHARS = 300


def is_schema_refusal(status_code: int, body: str, *, carried_tools: bool) -> bool:
    return status_code == 400 and carried_tools and _SCHEMA_WORDS.search(body) is not None


def schema_refused_message(server_text: str, *, compat_on: bool) -> str:
    """What the evaluation's error says: the server's words (truncated) and the way out."""
    text = " ".join(server_text.split())
    if len(text) > QUOTE_CHARS:
        text = text[: QUOTE_CHARS - 1] + "…"
    if compat_on:
        advice = (
            "even with evaluation.tool_schema_compat on (regex shorthands rewritten); the schemas "
            "use something else this server cannot compile"
        )
    else:
        advice = (
            "set evaluation.tool_schema_compat (`flywheel run --tool-schema-compat true`) to "
            "rewrite the regex shorthands (\\d, \\w, \\s) of their `pattern`s into classes it "
            "accepts"
        )
    return f"the candidate's server refused the tool schemas (HTTP 400: {text!r}); {advice}"
