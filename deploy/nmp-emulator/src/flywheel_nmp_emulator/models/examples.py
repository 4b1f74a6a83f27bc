"""Worked examples (request text -> tool call or answer): the few-shot examples of an ICL prompt
and the records a LoRA adapter is trained on. Both are searched by nearest neighbour."""

from __future__ import annotations

import ast
import json
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel_nmp_emulator.models.text import Featurizer, SparseVector, normalize

# The ICL injection format of the blueprint (reference/blueprint.md, "ICL example selection").
ICL_MARKER = "For example, if the conversation looks like this:"
ICL_RESPONSE_MARKER = "Then you'll respond with:"
ICL_TOOL_CALLS_MARKER = "Tool calls:"
_ROLE_SPLIT = re.compile(r"(?:^|\n\n)(system|user|assistant|tool): ", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    tool: str | None
    arguments: dict[str, Any] = field(default_factory=dict)
    answer: str = ""


def content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def last_user_text(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


# A second request in the same message: "... ? Also, can you ..." / "... . Oh, and ...".
_SECOND_REQUEST = re.compile(
    r"(?<=[.!?])\s+(?:also|oh,? and|and also|and|additionally|plus)\b[,:]?\s+", re.IGNORECASE
)
_MIN_REQUEST_WORDS = 3


def split_requests(text: str) -> list[str]:
    """The separate requests in one user message (usually one)."""
    parts = [p.strip() for p in _SECOND_REQUEST.split(text)]
    requests = [p for p in parts if len(p.split()) >= _MIN_REQUEST_WORDS]
    return requests if len(requests) > 1 else [text]


def history_text(messages: Sequence[dict[str, Any]]) -> str:
    """Everything said before the last user message, most recent first, tool arguments included:
    where a model looks for a value the customer gave earlier ("ship that one to ...")."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
    parts: list[str] = []
    for message in reversed(messages[:last_user]):
        if message.get("role") == "system":
            continue
        for call in message.get("tool_calls") or ():
            fn = call.get("function", {}) if isinstance(call, dict) else {}
            arguments = fn.get("arguments") if isinstance(fn, dict) else None
            parts.append(arguments if isinstance(arguments, str) else json.dumps(arguments))
        parts.append(content_text(message.get("content")))
    return "\n".join(p for p in parts if p)


def parse_arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def tool_calls_of(tool_calls: Any) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of each well-formed call in an OpenAI tool_calls list."""
    if not isinstance(tool_calls, list):
        return []
    found = []
    for call in tool_calls:
        fn = call.get("function", {}) if isinstance(call, dict) else {}
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str):
            found.append((name, parse_arguments(fn.get("arguments"))))
    return found


def first_tool_call(tool_calls: Any) -> tuple[str | None, dict[str, Any]]:
    calls = tool_calls_of(tool_calls)
    return calls[0] if calls else (None, {})


def parse_literal(text: str) -> Any:
    """JSON, or a Python literal (a Jinja template renders lists with Python's repr)."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _parse_icl_block(block: str) -> Example | None:
    conversation, found, response = block.partition(ICL_RESPONSE_MARKER)
    if not found:
        return None
    parts = _ROLE_SPLIT.split("\n\n" + conversation.strip())
    # split() yields [prefix, role, content, role, content, ...]
    user_texts = [parts[i + 1].strip() for i in range(1, len(parts) - 1, 2) if parts[i] == "user"]
    if not user_texts:
        return None
    tool: str | None = None
    arguments: dict[str, Any] = {}
    answer_part, has_calls, calls_part = response.partition(ICL_TOOL_CALLS_MARKER)
    if has_calls:
        start = calls_part.find("[")
        if start >= 0:
            try:
                calls, _ = json.JSONDecoder().raw_decode(calls_part[start:])
            except ValueError:
                calls = None
            tool, arguments = first_tool_call(calls)
    answer = re.sub(r"^\s*assistant:\s*", "", answer_part.strip())
    return Example(text=user_texts[-1], tool=tool, arguments=arguments, answer=answer)


class IclParser:
    """Few-shot examples found in a system prompt, cached per prompt (ICL datasets reuse them)."""

    def __init__(self, maxsize: int = 1024) -> None:
        self._maxsize = maxsize
        self._cache: OrderedDict[str, tuple[Example, ...]] = OrderedDict()

    def parse(self, system_text: str) -> tuple[Example, ...]:
        if ICL_MARKER not in system_text:
            return ()
        cached = self._cache.get(system_text)
        if cached is not None:
            self._cache.move_to_end(system_text)
            return cached
        blocks = system_text.split(ICL_MARKER)[1:]
        examples = tuple(e for b in blocks if (e := _parse_icl_block(b)) is not None)
        self._cache[system_text] = examples
        if len(self._cache) > self._maxsize:
            self._cache.popitem(last=False)
        return examples


class ExampleIndex:
    """Cosine nearest neighbours over examples, through an inverted index of their terms."""

    def __init__(self, examples: Sequence[Example], featurizer: Featurizer) -> None:
        self.examples = tuple(examples)
        self.featurizer = featurizer
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for i, example in enumerate(self.examples):
            for term, weight in normalize(featurizer.vector(example.text)).items():
                self._postings.setdefault(term, []).append((i, weight))

    def query_vector(self, text: str) -> SparseVector:
        return normalize(self.featurizer.vector(text))

    def scores(self, query: SparseVector) -> dict[int, float]:
        acc: dict[int, float] = {}
        for term, weight in query.items():
            for i, w in self._postings.get(term, ()):
                acc[i] = acc.get(i, 0.0) + weight * w
        return acc

    def neighbours(
        self, text: str, allowed: frozenset[str] | None = None, k: int = 5
    ) -> list[tuple[Example, float]]:
        """The k most similar examples whose tool is allowed (None = any example)."""
        ranked = sorted(
            self.scores(self.query_vector(text)).items(), key=lambda kv: (-kv[1], kv[0])
        )
        found: list[tuple[Example, float]] = []
        for i, score in ranked:
            example = self.examples[i]
            if allowed is not None and example.tool not in allowed:
                continue
            found.append((example, score))
            if len(found) == k:
                break
        return found
