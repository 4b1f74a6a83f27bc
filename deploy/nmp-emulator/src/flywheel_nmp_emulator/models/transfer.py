"""What worked examples teach about a tool's arguments: which keys the production model fills,
whether each value is copied from the request (in what form, after which words) or chosen from a
few values by the wording (a small naive Bayes over the request's words)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flywheel_nmp_emulator.models.examples import Example
from flywheel_nmp_emulator.models.facts import Facts, shape, typed_value

MAX_CUES = 4
ABSENT = "\x00absent"
# A key the examples fill at least this often is filled even when its value cannot be found.
ALWAYS = 0.9
_SMOOTHING = 0.5


@dataclass(frozen=True, slots=True)
class ValueClassifier:
    """Multinomial naive Bayes from request words to one of a key's values (or to 'absent')."""

    priors: dict[str, float]
    counts: dict[str, dict[str, int]]
    values: dict[str, Any]

    def predict(self, stems: frozenset[str]) -> tuple[bool, Any]:
        vocabulary = len({t for c in self.counts.values() for t in c}) + 1
        best_label, best_score = ABSENT, -math.inf
        for label, prior in sorted(self.priors.items()):
            counts = self.counts[label]
            total = sum(counts.values())
            score = math.log(prior)
            for term in stems:
                score += math.log(
                    (counts.get(term, 0) + _SMOOTHING) / (total + _SMOOTHING * vocabulary)
                )
            if score > best_score:
                best_label, best_score = label, score
        if best_label == ABSENT:
            return False, None
        return True, self.values[best_label]


@dataclass(frozen=True, slots=True)
class ArgPrior:
    presence: float
    from_text: bool
    constant: Any
    shapes: frozenset[str]
    cues: tuple[str, ...]
    # A multi-word value (a reason, a summary) is a clause of the request, not one token; it ends
    # before one of these words.
    clause: bool
    stops: frozenset[str]
    classifier: ValueClassifier | None

    def to_json(self) -> dict[str, Any]:
        return {
            "presence": self.presence,
            "from_text": self.from_text,
            "constant": self.constant,
            "shapes": sorted(self.shapes),
            "cues": list(self.cues),
            "clause": self.clause,
            "stops": sorted(self.stops),
            "classifier": None
            if self.classifier is None
            else {
                "priors": self.classifier.priors,
                "counts": self.classifier.counts,
                "values": self.classifier.values,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArgPrior:
        classifier = data.get("classifier")
        return cls(
            presence=float(data["presence"]),
            from_text=bool(data["from_text"]),
            constant=data["constant"],
            shapes=frozenset(data["shapes"]),
            cues=tuple(data["cues"]),
            clause=bool(data["clause"]),
            stops=frozenset(data["stops"]),
            classifier=ValueClassifier(**classifier) if classifier else None,
        )


@dataclass(frozen=True, slots=True)
class ToolPrior:
    keys: tuple[str, ...]
    args: dict[str, ArgPrior]

    def to_json(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "args": {k: a.to_json() for k, a in self.args.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolPrior:
        return cls(
            keys=tuple(data["keys"]),
            args={k: ArgPrior.from_json(v) for k, v in data["args"].items()},
        )


def value_text(value: Any) -> str | None:
    """How a scalar value would be written in a request ('25', 'ORD-1'), None for non-scalars."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _locate(value: Any, facts: Facts) -> tuple[int, str] | None:
    """Where and as what text the value is written in the request: a typed span whose value it
    is ('January 9, 2025' for '2025-01-09', '$49.99' for 49.99), else a literal occurrence."""
    for span in facts.spans:
        if span.kind != "quoted" and typed_value(span.text, span.kind) == value:
            return span.start, span.text
    written = value_text(value)
    if not written:
        return None
    found = facts.text.lower().find(written.lower())
    return (found, facts.text[found : found + len(written)]) if found >= 0 else None


def _classifier(
    examples: Sequence[Example], key: str, facts: Sequence[Facts]
) -> ValueClassifier | None:
    labels: list[str] = []
    values: dict[str, Any] = {}
    for example in examples:
        if key in example.arguments:
            label = json.dumps(example.arguments[key], sort_keys=True)
            values[label] = example.arguments[key]
        else:
            label = ABSENT
        labels.append(label)
    if len(set(labels)) < 2:
        return None
    counts: dict[str, Counter[str]] = {label: Counter() for label in set(labels)}
    for label, fact in zip(labels, facts, strict=True):
        counts[label].update(fact.stems)
    n = len(labels)
    return ValueClassifier(
        priors={label: c / n for label, c in Counter(labels).items()},
        counts={label: dict(c) for label, c in counts.items()},
        values=values,
    )


def learn_prior(examples: Sequence[Example]) -> ToolPrior:
    """Aggregate the examples of ONE tool into a prior over its arguments."""
    facts = [Facts(e.text) for e in examples]
    key_counts: Counter[str] = Counter()
    order: dict[str, int] = {}
    for example in examples:
        for key in example.arguments:
            key_counts[key] += 1
            order.setdefault(key, len(order))
    keys = tuple(sorted(key_counts, key=order.__getitem__))
    args: dict[str, ArgPrior] = {}
    for key in keys:
        values: Counter[str] = Counter()
        parsed: dict[str, Any] = {}
        in_text = clauses = 0
        shapes: set[str] = set()
        cues: Counter[str] = Counter()
        stops: set[str] = set()
        for example, fact in zip(examples, facts, strict=True):
            if key not in example.arguments:
                continue
            value = example.arguments[key]
            canon = json.dumps(value, sort_keys=True)
            values[canon] += 1
            parsed.setdefault(canon, value)
            located = _locate(value, fact)
            if located is None:
                continue
            in_text += 1
            position, written = located
            is_span = any(s.start == position and s.text == written for s in fact.spans)
            if not is_span and len(written.split()) > 1:
                clauses += 1
                if (follower := fact.word_after(position + len(written))) is not None:
                    stops.add(follower)
            else:
                shapes.add(shape(written))
            cues.update(fact.words_before(position, window=1))
        seen = key_counts[key]
        # A plain word ('UPS', 'Rotterdam') has no telling form: it is one of a set of values,
        # learned by the classifier, not found by its form.
        from_text = 2 * in_text > seen and (clauses > 0 or any(sh != "a" for sh in shapes))
        args[key] = ArgPrior(
            presence=seen / len(examples),
            from_text=from_text,
            constant=parsed[values.most_common(1)[0][0]],
            shapes=frozenset(shapes),
            cues=tuple(c for c, _ in cues.most_common(MAX_CUES)),
            clause=2 * clauses > max(in_text, 1),
            stops=frozenset(stops),
            classifier=None if from_text else _classifier(examples, key, facts),
        )
    return ToolPrior(keys=keys, args=args)
