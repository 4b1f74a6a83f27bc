"""An instruct model: tool calling and chat over the pieces in this package.

It sees only the request (messages, tools, tool_choice) and, for a customized model, its own
adapter; never a reference answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from flywheel_nmp_emulator.draws import short_hash, unit_draw
from flywheel_nmp_emulator.models.arguments import fill_arguments
from flywheel_nmp_emulator.models.capacity import Capacity, Guidance, capacity_of
from flywheel_nmp_emulator.models.chooser import ToolIndexCache
from flywheel_nmp_emulator.models.examples import (
    Example,
    IclParser,
    content_text,
    history_text,
    last_user_text,
    split_requests,
)
from flywheel_nmp_emulator.models.generic import extractive_answer
from flywheel_nmp_emulator.models.judge import judge_reply
from flywheel_nmp_emulator.models.lora import Adapter
from flywheel_nmp_emulator.models.text import cosine, normalize
from flywheel_nmp_emulator.models.tools import ToolsCache, ToolSpec
from flywheel_nmp_emulator.models.transfer import ToolPrior, learn_prior

# A few-shot example at least this similar to the request decides the tool outright.
EXAMPLE_DECIDES = 0.5
# Otherwise each tool's score gains this much of its best example's similarity.
EXAMPLE_WEIGHT = 0.5
# With tool_choice "auto", below this similarity the model answers in text instead.
AUTO_TOOL_THRESHOLD = 0.08
# Few-shot or adapter answers are reused for generic chat when the request is this close.
ANSWER_REUSE = 0.8


@dataclass(frozen=True, slots=True)
class Reply:
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(slots=True)
class ModelKit:
    """Caches shared by every model instance (parsed tools, tool indexes, parsed ICL prompts)."""

    tools: ToolsCache = field(default_factory=ToolsCache)
    indexes: ToolIndexCache = field(default_factory=ToolIndexCache)
    icl: IclParser = field(default_factory=IclParser)


@dataclass(frozen=True, slots=True)
class Choice:
    tool: ToolSpec
    score: float
    guidance: Guidance
    prior: ToolPrior | None


def _forced_tool(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
    return None


class InstructModel:
    def __init__(
        self,
        name: str,
        kit: ModelKit,
        seed: int,
        adapter: Adapter | None = None,
        judge: bool = False,
    ) -> None:
        self.name = name
        self.kit = kit
        self.seed = seed
        self.adapter = adapter
        self.judge = judge
        self.capacity: Capacity = capacity_of(name)

    def respond(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> Reply:
        user_text = last_user_text(messages)
        if self.judge and (verdict := judge_reply(user_text)) is not None:
            return Reply(content=verdict)
        system_text = "\n".join(
            content_text(m.get("content")) for m in messages if m.get("role") == "system"
        )
        examples = self.kit.icl.parse(system_text)
        if tools and tool_choice != "none":
            key, specs = self.kit.tools.get(tools)
            if specs:
                forced = _forced_tool(tool_choice)
                history = history_text(messages)
                chosen: list[tuple[Choice, str, str]] = []
                for request in [user_text] if forced else split_requests(user_text):
                    choice = self._choose(request, key, specs, examples, forced)
                    if all(c.tool.name != choice.tool.name for c, _, _ in chosen):
                        chosen.append((choice, request, history))
                    # A later request may refer back to this one ("refund that one too").
                    history = request + "\n" + history
                if chosen[0][0].score >= AUTO_TOOL_THRESHOLD or tool_choice not in (None, "auto"):
                    return Reply(content=None, tool_calls=[self._call(*c) for c in chosen])
        return Reply(content=self._answer(user_text, messages, examples))

    def _choose(
        self,
        text: str,
        key: bytes,
        specs: tuple[ToolSpec, ...],
        examples: tuple[Example, ...],
        forced: str | None,
    ) -> Choice:
        index = self.kit.indexes.get(
            key, specs, self.capacity.featurizer, self.capacity.reads_parameters
        )
        ranked = index.rank(text)
        by_name = {tool.name: tool for tool in specs}
        if forced in by_name:
            tool = by_name[forced]
            return Choice(tool, 1.0, "adapter", self._prior(tool.name, text, examples))
        guidance: Guidance = "none"
        tool, score = ranked[0]
        if self.adapter is not None:
            predicted = self.adapter.predict_tool(text, frozenset(by_name))
            if predicted is not None:
                tool, score, guidance = by_name[predicted[0]], predicted[1], "adapter"
        elif examples:
            tool, score, guidance = self._with_examples(text, ranked, by_name, examples)
        if len(ranked) > 1 and unit_draw(self.seed, self.name, text) < self.capacity.confusion_for(
            guidance
        ):
            # The model's deliberate mistake: the most plausible other tool.
            tool, score = next((t, s) for t, s in ranked if t.name != tool.name)
        return Choice(tool, score, guidance, self._prior(tool.name, text, examples))

    def _with_examples(
        self,
        text: str,
        ranked: list[tuple[ToolSpec, float]],
        by_name: dict[str, ToolSpec],
        examples: tuple[Example, ...],
    ) -> tuple[ToolSpec, float, Guidance]:
        featurizer = self.capacity.featurizer
        query = normalize(featurizer.vector(text))
        best_per_tool: dict[str, float] = {}
        for example in examples:
            if example.tool in by_name:
                sim = cosine(query, featurizer.vector(example.text))
                best_per_tool[example.tool] = max(best_per_tool.get(example.tool, 0.0), sim)
        if best_per_tool:
            nearest = max(best_per_tool, key=lambda t: (best_per_tool[t], t))
            if best_per_tool[nearest] >= EXAMPLE_DECIDES:
                return by_name[nearest], best_per_tool[nearest], "example"
        rescored = sorted(
            ((t, s + EXAMPLE_WEIGHT * best_per_tool.get(t.name, 0.0)) for t, s in ranked),
            key=lambda ts: -ts[1],
        )
        return rescored[0][0], rescored[0][1], "none"

    def _prior(self, tool: str, text: str, examples: tuple[Example, ...]) -> ToolPrior | None:
        if self.adapter is not None:
            return self.adapter.priors.get(tool)
        same_tool = [e for e in examples if e.tool == tool]
        if not same_tool:
            return None
        featurizer = self.capacity.featurizer
        query = featurizer.vector(text)
        nearest = max(same_tool, key=lambda e: cosine(query, featurizer.vector(e.text)))
        return learn_prior([nearest])

    def _call(self, choice: Choice, text: str, history: str) -> dict[str, Any]:
        arguments = fill_arguments(
            choice.tool, text, choice.prior, self.capacity.uses_cues, history
        )
        return {
            "id": "call_" + short_hash(self.name, text, choice.tool.name, size=8),
            "type": "function",
            "function": {"name": choice.tool.name, "arguments": orjson.dumps(arguments).decode()},
        }

    def _answer(
        self, text: str, messages: Sequence[dict[str, Any]], examples: tuple[Example, ...]
    ) -> str:
        if self.adapter is not None:
            learned = self.adapter.nearest_answer(text)
            if learned is not None and learned[1] >= ANSWER_REUSE:
                return learned[0]
        if examples:
            featurizer = self.capacity.featurizer
            query = featurizer.vector(text)
            scored = [
                (cosine(query, featurizer.vector(e.text)), e.answer) for e in examples if e.answer
            ]
            if scored and (best := max(scored))[0] >= ANSWER_REUSE:
                return best[1]
        return extractive_answer(text, messages, 2 if self.capacity.size_b >= 8 else 1)
