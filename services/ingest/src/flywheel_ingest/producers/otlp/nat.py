"""NeMo Agent Toolkit's own serialisations on its spans: `nat.metadata`, and an answer's tool
calls, which NAT writes nowhere but at the end of `output.value` as a Python repr.

That repr is read as a Python literal (`ast.literal_eval`, never evaluated as code), and only
within bounds: `output.value` is the model's text, so it may be long, or hold the marker itself
ahead of the real calls.
"""

import ast
from collections.abc import Mapping
from typing import Any

from flywheel_ingest.producers.otlp.span import OtlpSpan
from flywheel_ingest.producers.otlp.tools import tool_calls
from flywheel_ingest.producers.otlp.values import parsed_json

NAT_TOOL_CALLS = "\n\nTool calls: "
"""What NeMo Agent Toolkit's LangChain callback puts between an answer and its tool calls."""

_LITERAL_MAX = 200_000
_LITERAL_TRIES = 4


def nat_metadata(span: OtlpSpan) -> dict[str, Any]:
    metadata = parsed_json(span.attribute("nat.metadata"))
    return metadata if isinstance(metadata, dict) else {}


def nat_response_field(nat: Mapping[str, Any], name: str) -> Any:
    responses = nat.get("chat_responses")
    if not isinstance(responses, list) or not responses or not isinstance(responses[0], dict):
        return None
    message = responses[0].get("message")
    metadata = message.get("response_metadata") if isinstance(message, dict) else None
    return metadata.get(name) if isinstance(metadata, dict) else None


def nat_tool_calls(output_value: Any) -> list[dict[str, Any]]:
    return split_nat_tool_calls(output_value)[1] if isinstance(output_value, str) else []


def split_nat_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """NAT's "<answer>\\n\\nTool calls: <repr of the calls>" as the answer and its calls."""
    start = 0
    for _ in range(_LITERAL_TRIES):
        position = text.find(NAT_TOOL_CALLS, start)
        if position < 0:
            break
        literal = text[position + len(NAT_TOOL_CALLS) :]
        calls = tool_calls(_python_literal(literal))
        if calls:
            return text[:position], calls
        start = position + 1
    return text, []


def _python_literal(text: str) -> Any:
    """A Python literal (what `repr` wrote), never evaluated as code; None when it is not one."""
    if len(text) > _LITERAL_MAX:
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
