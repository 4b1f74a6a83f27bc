"""Generic (non-tool) chat: an extractive answer from the conversation's own context."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from flywheel_nmp_emulator.models.examples import ICL_MARKER, content_text
from flywheel_nmp_emulator.models.text import Featurizer, cosine

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_FEATURES = Featurizer(stem=True, bigrams=False)


def context_sentences(messages: Sequence[dict[str, Any]]) -> list[str]:
    """Sentences of every message except the last user turn (system prompt, documents, history),
    leaving out injected few-shot examples, which are handled as examples, not as context."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    sentences: list[str] = []
    for i, message in enumerate(messages):
        if i == last_user:
            continue
        text = content_text(message.get("content")).split(ICL_MARKER)[0]
        sentences.extend(s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 3)
    return sentences


def extractive_answer(
    question: str, messages: Sequence[dict[str, Any]], sentences_wanted: int
) -> str:
    """The context sentences closest to the question, or a templated reply when there are none."""
    query = _FEATURES.vector(question)
    scored = [
        (cosine(query, _FEATURES.vector(s)), -i, s)
        for i, s in enumerate(context_sentences(messages))
    ]
    relevant = sorted((t for t in scored if t[0] > 0.0), reverse=True)[:sentences_wanted]
    if relevant:
        # Keep the chosen sentences in their original order so the answer reads naturally.
        return " ".join(s for _, _, s in sorted(relevant, key=lambda t: -t[1]))
    if not question.strip():
        return "How can I help you today?"
    return f'Thanks for your message. Regarding "{question.strip()[:200]}": I can help with that.'
