"""Tool choice by similarity between the user's request and each tool's name and description."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from flywheel_nmp_emulator.models.text import (
    Featurizer,
    SparseVector,
    add_into,
    log_scale,
    normalize,
    split_identifier,
)
from flywheel_nmp_emulator.models.tools import ToolSpec

# Relative weight of each part of a tool in its profile: the name says the most.
NAME_WEIGHT = 2.0
DESCRIPTION_WEIGHT = 1.0
PARAM_NAME_WEIGHT = 0.5
PARAM_TEXT_WEIGHT = 0.25


@dataclass(frozen=True, slots=True)
class ToolIndex:
    tools: tuple[ToolSpec, ...]
    featurizer: Featurizer
    idf: dict[str, float]
    # term -> (tool position, weight in that tool's normalised profile)
    postings: dict[str, tuple[tuple[int, float], ...]]

    @classmethod
    def build(
        cls, tools: tuple[ToolSpec, ...], featurizer: Featurizer, reads_parameters: bool
    ) -> ToolIndex:
        raw: list[SparseVector] = []
        for tool in tools:
            vec: SparseVector = {}
            add_into(vec, featurizer.vector(split_identifier(tool.name)), NAME_WEIGHT)
            add_into(vec, featurizer.vector(tool.description), DESCRIPTION_WEIGHT)
            if reads_parameters:
                for p in tool.params:
                    add_into(vec, featurizer.vector(split_identifier(p.name)), PARAM_NAME_WEIGHT)
                    text = " ".join((p.description, *p.enum))
                    add_into(vec, featurizer.vector(text), PARAM_TEXT_WEIGHT)
            raw.append(log_scale(vec))
        # Inverse document frequency over this tool list: words every tool shares say nothing.
        df: dict[str, int] = {}
        for vec in raw:
            for term in vec:
                df[term] = df.get(term, 0) + 1
        n = len(raw)
        idf = {term: math.log(1.0 + n / count) for term, count in df.items()}
        postings: dict[str, list[tuple[int, float]]] = {}
        for i, vec in enumerate(raw):
            for term, weight in normalize({t: w * idf[t] for t, w in vec.items()}).items():
                postings.setdefault(term, []).append((i, weight))
        return cls(
            tools=tools,
            featurizer=featurizer,
            idf=idf,
            postings={term: tuple(p) for term, p in postings.items()},
        )

    def rank(self, text: str) -> list[tuple[ToolSpec, float]]:
        """Every tool with its cosine similarity to the text, best first (ties: list order)."""
        idf = self.idf
        query = normalize(
            {t: w * idf[t] for t, w in self.featurizer.vector(text).items() if t in idf}
        )
        scores = [0.0] * len(self.tools)
        for term, weight in query.items():
            for i, w in self.postings[term]:
                scores[i] += weight * w
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [(self.tools[i], scores[i]) for i in order]


class ToolIndexCache:
    def __init__(self, maxsize: int = 512) -> None:
        self._maxsize = maxsize
        self._entries: OrderedDict[tuple[bytes, Featurizer, bool], ToolIndex] = OrderedDict()

    def get(
        self,
        key: bytes,
        tools: tuple[ToolSpec, ...],
        featurizer: Featurizer,
        reads_parameters: bool,
    ) -> ToolIndex:
        cache_key = (key, featurizer, reads_parameters)
        index = self._entries.get(cache_key)
        if index is None:
            index = ToolIndex.build(tools, featurizer, reads_parameters)
            self._entries[cache_key] = index
            if len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(cache_key)
        return index
