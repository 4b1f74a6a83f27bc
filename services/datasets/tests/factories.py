"""Record factories and fakes of the build's ports for the unit tests."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import Any

import orjson

from flywheel_datasets.errors import ReadInterrupted
from flywheel_datasets.ports import RecordQuery
from flywheel_datasets.records import Record, conversation_key, first_tool_name, user_turns
from flywheel_datasets.selection import Candidate, LoggedRecord

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
    for name in ("get_order_status", "cancel_order", "track_shipment")
]

_ids = itertools.count()


def record(
    user: str | Sequence[str] = "Where is my order ORD-1?",
    *,
    tool: str | None = "get_order_status",
    arguments: Any = None,
    conversation: str | None = None,
    answer: str = "Let me check.",
    system: str | None = "You are a support agent.",
    tools: list[dict[str, Any]] | None = None,
) -> Record:
    """A logged record: the user turns (earlier ones as history), then the answer."""
    turns = [user] if isinstance(user, str) else list(user)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for earlier in turns[:-1]:
        messages.append({"role": "user", "content": earlier})
        messages.append({"role": "assistant", "content": "Sure."})
    messages.append({"role": "user", "content": turns[-1]})
    if tool is None:
        message: dict[str, Any] = {"role": "assistant", "content": answer}
    else:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{next(_ids)}",
                    "type": "function",
                    "function": {
                        "name": tool,
                        "arguments": arguments if arguments is not None else {"order_id": "ORD-1"},
                    },
                }
            ],
        }
    logged: Record = {
        "workload_id": "order-tools",
        "client_id": "acme",
        "timestamp": "2025-01-06T09:00:00.000Z",
        "request": {"model": "big", "messages": messages},
        "response": {"choices": [{"index": 0, "message": message}]},
    }
    if tool is not None or tools is not None:
        logged["request"]["tools"] = tools if tools is not None else TOOLS
    if conversation is not None:
        logged["metadata"] = {"conversation_id": conversation}
    return logged


def candidate(source: Record, doc_id: str | None = None) -> Candidate:
    turns = user_turns(source)
    return Candidate(
        doc_id=doc_id or f"doc-{next(_ids)}",
        body=orjson.dumps(source),
        tools=None,
        turns=tuple(turns),
        label=first_tool_name(source),
        group=conversation_key(source, turns),
    )


class FakeSource:
    """Serves records in pages, newest first as given; counts how many pages were read."""

    def __init__(
        self, records: Iterable[Record], page_size: int = 100, *, interruptions: int = 0
    ) -> None:
        self._records = [orjson.dumps(r) for r in records]
        self._page_size = page_size
        self.pages_read = 0
        self.queries: list[RecordQuery] = []
        self.interruptions = interruptions
        """How many reads lose their cursor after their first page (a restarted store)."""

    async def pages(self, query: RecordQuery) -> AsyncGenerator[list[LoggedRecord], None]:
        self.queries.append(query)
        for start in range(0, len(self._records), self._page_size):
            if start and self.interruptions:
                self.interruptions -= 1
                raise ReadInterrupted("the point in time was lost: 404")
            self.pages_read += 1
            chunk = self._records[start : start + self._page_size]
            yield [
                LoggedRecord(f"doc-{start + i}", orjson.loads(raw)) for i, raw in enumerate(chunk)
            ]


class FakeEmbedder:
    """Bag-of-words vectors over a fixed vocabulary: similar texts, similar vectors."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self._vocabulary: dict[str, int] = {}

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        vectors = []
        for text in texts:
            vector = [0.0] * 64
            for word in text.lower().split():
                index = self._vocabulary.setdefault(word, len(self._vocabulary) % 64)
                vector[index] += 1.0
            vectors.append(vector)
        return vectors
