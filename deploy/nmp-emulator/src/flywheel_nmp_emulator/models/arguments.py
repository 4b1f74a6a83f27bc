"""Type-aware argument filling: each parameter's value is looked for in the request text by what
the parameter is (an email, an id, an amount, an enum...), optionally guided by a learned prior."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from flywheel_nmp_emulator.models.facts import NUMBER_WORDS, Facts, Span, shape, typed_value
from flywheel_nmp_emulator.models.text import split_identifier, stem, words
from flywheel_nmp_emulator.models.tools import ParamSpec, ToolSpec
from flywheel_nmp_emulator.models.transfer import ALWAYS, ArgPrior, ToolPrior

_ID_WORDS = frozenset(
    {"id", "number", "code", "sku", "ref", "reference", "confirmation", "tracking", "pnr", "zip"}
)
_MONEY_WORDS = frozenset(
    {"amount", "price", "cost", "total", "balance", "fee", "budget", "refund", "payment"}
)
_COUNT_WORDS = frozenset(
    {
        "quantity",
        "count",
        "qty",
        "num",
        "guests",
        "people",
        "nights",
        "seats",
        "items",
        "days",
        "limit",
    }
)
_TEXT_CUES = frozenset(
    stem(w) for w in ("because", "since", "about", "regarding", "saying", "reason", "as", "due")
)
_NEGATIONS = frozenset({"no", "not", "dont", "don't", "without", "never", "nt"})
_EXAMPLE_IN_DESCRIPTION = re.compile(
    r"(?:e\.g\.|eg|example|like|format)[:,]?\s+['\"]?([A-Za-z0-9#][\w#-]*\d[\w-]*)", re.IGNORECASE
)


@lru_cache(maxsize=4096)
def param_kind(p: ParamSpec) -> str:
    name_words = set(words(split_identifier(p.name)))
    if p.enum:
        return "enum"
    if p.type == "boolean":
        return "bool"
    if p.type in ("integer", "number"):
        if name_words & _MONEY_WORDS:
            return "money"
        return "count" if name_words & _COUNT_WORDS or p.type == "integer" else "number"
    if p.type == "array":
        return "array"
    fmt = (p.format or "").lower()
    if "email" in name_words or fmt == "email":
        return "email"
    if name_words & {"phone", "mobile", "tel", "telephone"}:
        return "phone"
    if name_words & {"date", "day", "dob", "birthday"} or fmt == "date":
        return "date"
    if name_words & {"time", "hour"}:
        return "time"
    if name_words & {"url", "link", "website"}:
        return "url"
    if name_words & _ID_WORDS or p.name.lower().endswith("id"):
        return "id"
    if "name" in name_words:
        return "name"
    return "text"


def _cue_stems(p: ParamSpec) -> set[str]:
    return {stem(w) for w in words(split_identifier(p.name))} - {"id", "number", "code"}


def _cue_score(span: Span, facts: Facts, cues: set[str] | tuple[str, ...]) -> int:
    if not cues:
        return 0
    before = facts.words_before(span.start)
    return sum(1 for w in before if w in cues)


def _pick(
    spans: list[Span],
    facts: Facts,
    used: set[int],
    cues: set[str] | tuple[str, ...],
    use_cues: bool,
) -> Span | None:
    free = [s for s in spans if s.start not in used]
    if not free:
        return None
    if use_cues:
        # Best cue match; ties keep text order (max returns the first maximum).
        return max(free, key=lambda s: _cue_score(s, facts, cues))
    return free[0]


def _enum_value(p: ParamSpec, facts: Facts) -> str | None:
    best: tuple[float, int, str] | None = None
    lowered = facts.text.lower()
    for value in p.enum:
        value_words = [stem(w) for w in words(split_identifier(value))]
        if not value_words:
            continue
        hit = sum(1 for w in value_words if w in facts.stems) / len(value_words)
        phrase = split_identifier(value).lower()
        score = hit + (1.0 if phrase and phrase in lowered else 0.0)
        candidate = (score, len(value_words), value)
        if score >= 0.5 and (best is None or candidate[:2] > best[:2]):
            best = candidate
    return best[2] if best else None


def _bool_value(p: ParamSpec, facts: Facts) -> bool | None:
    name_stems = _cue_stems(p) - {"is", "has", "include", "enable"}
    for start, word in facts.word_spans:
        if word in name_stems:
            before = {w for w in facts.words_before(start)}
            return not (before & _NEGATIONS)
    return None


def _coerce(p: ParamSpec | None, value: Any) -> Any:
    if p is None or value is None:
        return value
    if p.type == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if p.type == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def extract_param(p: ParamSpec, facts: Facts, used: set[int], use_cues: bool) -> Any:
    """The value of one parameter found in the text, or None; marks the span it used."""
    kind = param_kind(p)
    cues = _cue_stems(p)
    if p.pattern is not None and kind not in ("enum", "bool"):
        matches = [m for m in p.pattern.finditer(facts.text) if m.start() not in used and m.group()]
        if matches:
            used.add(matches[0].start())
            return matches[0].group()
    if kind == "enum":
        return _enum_value(p, facts)
    if kind == "bool":
        return _bool_value(p, facts)
    if kind in ("email", "phone", "date", "time", "url"):
        span = _pick(facts.of_kind(kind), facts, used, cues, use_cues)
    elif kind == "id":
        candidates = facts.of_kind("id")
        wanted = {shape(m.group(1)) for m in _EXAMPLE_IN_DESCRIPTION.finditer(p.description)}
        if wanted:
            candidates = [s for s in candidates if shape(s.text) in wanted] or candidates
        if not candidates:
            # A plain long number is an id too when the parameter asks for one.
            candidates = [s for s in facts.of_kind("number") if len(s.text) >= 3]
        span = _pick(candidates, facts, used, cues, use_cues)
    elif kind == "money":
        span = _pick(facts.of_kind("money") or facts.of_kind("number"), facts, used, cues, use_cues)
    elif kind in ("count", "number"):
        span = _pick(facts.of_kind("number"), facts, used, cues, use_cues)
        if span is None and kind == "count":
            written = facts.number_words()
            return written[0][1] if written else None
    elif kind == "name":
        names = facts.names()
        return names[0] if names else None
    elif kind == "array":
        item = ParamSpec(
            p.name.rstrip("s"), p.item_type or "string", p.description, (), False, None, None, None
        )
        values: list[Any] = []
        while (value := extract_param(item, facts, used, use_cues)) is not None and len(values) < 8:
            values.append(value)
            if param_kind(item) in ("enum", "bool", "name", "text"):
                break
        return values or None
    else:  # free text: a quoted phrase, the clause after "because"/"about", else nothing
        quoted = facts.of_kind("quoted")
        if quoted:
            return quoted[0].text
        return facts.clause_after(set(_TEXT_CUES))
    if span is None:
        return None
    used.add(span.start)
    return typed_value(span.text, span.kind)


def _from_text(
    prior: ArgPrior, p: ParamSpec | None, facts: Facts, used: set[int], use_cues: bool
) -> Any:
    """A value the examples copied from the request: found here in the same form or place.
    An optional key is only filled from a value of the learned form; a key the examples always
    fill falls back to reading the parameter's type."""
    if prior.clause:
        clause = facts.clause_after(set(prior.cues), prior.stops)
        if clause:
            return clause
    elif prior.shapes:
        same_form = [s for s in (*facts.spans, *facts.tokens) if shape(s.text) in prior.shapes]
        span = _pick(same_form, facts, used, prior.cues, True)
        if span is not None:
            used.add(span.start)
            kind = "number" if isinstance(prior.constant, int | float) else span.kind
            return typed_value(span.text, kind)
    if p is not None and prior.presence >= ALWAYS:
        return extract_param(p, facts, used, use_cues)
    return None


def _with_prior(
    tool: ToolSpec, prior: ToolPrior, facts: Facts, history: str, use_cues: bool
) -> dict[str, Any]:
    used: set[int] = set()
    history_facts: Facts | None = None
    args: dict[str, Any] = {}
    for key in prior.keys:
        p = tool.param(key)
        if tool.params and p is None:
            continue  # the example's tool had a parameter this version no longer has
        learned = prior.args[key]
        value: Any = None
        if p is not None and p.enum:
            value = _enum_value(p, facts)
        if value is None and learned.classifier is not None:
            present, value = learned.classifier.predict(facts.stems)
            if not present:
                continue
        elif value is None and learned.from_text:
            value = _from_text(learned, p, facts, used, use_cues)
            if value is None and history and learned.presence >= ALWAYS:
                # "Ship that one to ...": the value was given earlier in the conversation.
                history_facts = history_facts or Facts(history)
                value = _from_text(learned, p, history_facts, set(), use_cues)
        if p is not None and p.enum and value is not None and str(value) not in p.enum:
            value = None  # never answer outside the schema's enum
        if value is None:
            if learned.presence < ALWAYS:
                continue
            value = learned.constant
        args[key] = _coerce(p, value)
    return args


def fill_arguments(
    tool: ToolSpec, text: str, prior: ToolPrior | None, use_cues: bool, history: str = ""
) -> dict[str, Any]:
    """Arguments for a call of `tool` made for `text` (earlier turns in `history`).

    Without a prior: required parameters plus any optional one whose value is in the text.
    With a prior (few-shot examples, a LoRA adapter): the keys the examples show, each filled the
    way the examples did it (copied from the text in the same form, or chosen by the wording).
    """
    facts = Facts(text)
    if prior is not None and prior.keys:
        return _with_prior(tool, prior, facts, history, use_cues)
    used: set[int] = set()
    args: dict[str, Any] = {}
    history_facts: Facts | None = None
    for p in sorted(tool.params, key=lambda q: not q.required):
        value = extract_param(p, facts, used, use_cues)
        if value is None and p.required and history:
            history_facts = history_facts or Facts(history)
            value = extract_param(p, history_facts, set(), use_cues)
        if value is None and p.required:
            value = _fallback(p, text)
        if value is not None:
            args[p.name] = _coerce(p, value)
    return args


def _fallback(p: ParamSpec, text: str) -> Any:
    """A required value the text does not state: what an instruct model typically guesses."""
    kind = param_kind(p)
    if kind == "enum":
        return p.enum[0]
    if kind == "text":
        return text.strip()
    if kind == "count":
        return next((v for w, v in NUMBER_WORDS.items() if w in text.lower()), 1)
    return None
