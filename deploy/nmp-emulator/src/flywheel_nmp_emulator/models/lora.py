"""LoRA "training": the adapter memorises the workload's training records and answers a new
request like its nearest training requests did (tool choice by weighted k-NN, arguments by the
learned per-tool prior applied to the new request)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from flywheel_nmp_emulator.models.examples import (
    Example,
    ExampleIndex,
    content_text,
    last_user_text,
    split_requests,
    tool_calls_of,
)
from flywheel_nmp_emulator.models.text import Featurizer
from flywheel_nmp_emulator.models.transfer import ToolPrior, learn_prior

ADAPTER_FEATURIZER = Featurizer(stem=True, bigrams=True)
NEIGHBOURS = 5


def examples_from_training_record(record: dict[str, Any]) -> list[Example]:
    """A record of training/train_data.jsonl: {"messages": request + [answer], "tools": [...]}.
    A message that asks for two things and got two calls teaches one example per request."""
    messages = record.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return []
    answer, request = messages[-1], messages[:-1]
    if not isinstance(answer, dict) or answer.get("role") != "assistant":
        return []
    user = last_user_text([m for m in request if isinstance(m, dict)])
    if not user:
        return []
    calls = tool_calls_of(answer.get("tool_calls"))
    if not calls:
        return [Example(text=user, tool=None, answer=content_text(answer.get("content")))]
    requests = split_requests(user)
    if len(calls) > 1 and len(requests) == len(calls):
        return [
            Example(text=t, tool=name, arguments=args)
            for t, (name, args) in zip(requests, calls, strict=True)
        ]
    return [Example(text=user, tool=calls[0][0], arguments=calls[0][1])]


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    records = []
    for line in data.splitlines():
        if line.strip():
            value = orjson.loads(line)
            if isinstance(value, dict):
                records.append(value)
    return records


def count_lines(data: bytes) -> int:
    """The records of a JSONL file, counted without parsing them."""
    return sum(1 for line in data.splitlines() if line.strip())


class Adapter:
    def __init__(self, examples: Iterable[Example], priors: dict[str, ToolPrior]) -> None:
        self.examples = tuple(examples)
        self.priors = priors
        self.index = ExampleIndex(self.examples, ADAPTER_FEATURIZER)

    @classmethod
    def train(cls, records: Iterable[dict[str, Any]]) -> Adapter:
        examples = [e for r in records for e in examples_from_training_record(r)]
        by_tool: dict[str, list[Example]] = {}
        for example in examples:
            if example.tool:
                by_tool.setdefault(example.tool, []).append(example)
        return cls(examples, {tool: learn_prior(group) for tool, group in by_tool.items()})

    def predict_tool(self, text: str, allowed: frozenset[str]) -> tuple[str, float] | None:
        """Weighted vote of the nearest training requests; None if nothing similar was learned."""
        votes: dict[str, float] = {}
        for example, score in self.index.neighbours(text, allowed, k=NEIGHBOURS):
            if example.tool:
                votes[example.tool] = votes.get(example.tool, 0.0) + score * score
        if not votes:
            return None
        tool = max(votes, key=lambda t: (votes[t], t))
        return tool, votes[tool] / sum(votes.values())

    def nearest_answer(self, text: str) -> tuple[str, float] | None:
        found = self.index.neighbours(text, k=1)
        if not found or not found[0][0].answer:
            return None
        return found[0][0].answer, found[0][1]

    def accuracy(self, records: Iterable[dict[str, Any]]) -> float | None:
        """Function-name accuracy of the adapter on held-out records (the validation file)."""
        examples = [e for r in records for e in examples_from_training_record(r) if e.tool]
        if not examples:
            return None
        allowed = frozenset(self.priors)
        hits = sum(
            1 for e in examples if (p := self.predict_tool(e.text, allowed)) and p[0] == e.tool
        )
        return hits / len(examples)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "examples": [
                    {"text": e.text, "tool": e.tool, "arguments": e.arguments, "answer": e.answer}
                    for e in self.examples
                ],
                "priors": {tool: prior.to_json() for tool, prior in self.priors.items()},
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Adapter:
        doc = orjson.loads(data)
        return cls(
            (Example(**e) for e in doc["examples"]),
            {tool: ToolPrior.from_json(p) for tool, p in doc["priors"].items()},
        )
