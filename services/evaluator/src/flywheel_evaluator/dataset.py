"""Records of the eval and ICL files (blueprint format: the logged request and response).

Each JSONL line holds `request` (OpenAI chat request: messages, optional tools) and `response`
(the production model's completion, the reference). Lines that are not such a record are
skipped: they have no reference to score against, so they are no failed request either.

An ICL record also lists `icl_example_ids`, the log-store ids of the training records shown in
its prompt; they go with the record's result, for a reviewer to see what the model was shown.
"""

from dataclasses import dataclass
from typing import Any

import orjson
import structlog

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EvalItem:
    index: int
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    reference: dict[str, Any]
    """The production model's message: `content` and, for tool calling, `tool_calls`."""
    example_ids: list[str] | None = None
    """The ICL record's `icl_example_ids`; None for a record without them (base, customized)."""

    @property
    def reference_calls(self) -> list[Any]:
        calls = self.reference.get("tool_calls")
        return calls if isinstance(calls, list) else []

    @property
    def reference_text(self) -> str:
        content = self.reference.get("content")
        return content if isinstance(content, str) else ""


def _item(index: int, record: Any) -> EvalItem | None:
    if not isinstance(record, dict):
        return None
    request, response = record.get("request"), record.get("response")
    if not isinstance(request, dict) or not isinstance(response, dict):
        return None
    messages = request.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) for m in messages)
    ):
        return None
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    tools = request.get("tools")
    ids = record.get("icl_example_ids")
    example_ids = [str(i) for i in ids] if isinstance(ids, list) else None
    return EvalItem(
        index, messages, tools if isinstance(tools, list) and tools else None, message, example_ids
    )


def parse_items(content: bytes) -> list[EvalItem]:
    """The usable records of a JSONL file, indexed by their line among the usable ones."""
    items: list[EvalItem] = []
    skipped = 0
    for line in content.splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            skipped += 1
            continue
        item = _item(len(items), record)
        if item is None:
            skipped += 1
        else:
            items.append(item)
    if skipped:
        _log.warning("dataset.records_skipped", skipped=skipped, usable=len(items))
    return items
