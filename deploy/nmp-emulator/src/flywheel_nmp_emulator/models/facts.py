"""Typed values found in a request text (emails, ids, numbers, dates...), with their positions."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from flywheel_nmp_emulator.models.text import stem

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_MONTH_HINT = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)")
_DIGIT = re.compile(r"\d")
_TIME_HINT = re.compile(r"\d:\d|\d\s*[ap]\.?m")

Prefilter = Callable[[str, str], bool]


def _has_digit(text: str, lower: str) -> bool:
    return _DIGIT.search(text) is not None


# (kind, pattern, cheap test that the pattern can match at all). The tests matter: these run on
# every tool call, and most patterns cannot match most texts.
# Order matters: earlier patterns claim their characters first (an email's digits are no id).
_PATTERNS: tuple[tuple[str, re.Pattern[str], Prefilter], ...] = (
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), lambda t, lo: "@" in t),
    ("url", re.compile(r"https?://\S+[^\s.,;:!?)\]]"), lambda t, lo: "://" in t),
    ("date", re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), lambda t, lo: "-" in t and _has_digit(t, lo)),
    (
        "date",
        re.compile(rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b", re.IGNORECASE),
        lambda t, lo: _MONTH_HINT.search(lo) is not None and _has_digit(t, lo),
    ),
    (
        "date",
        re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}\b", re.IGNORECASE),
        lambda t, lo: _MONTH_HINT.search(lo) is not None and _has_digit(t, lo),
    ),
    ("date", re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"), lambda t, lo: "/" in t),
    (
        "time",
        re.compile(r"\b\d{1,2}:\d{2}(?:\s*[ap]\.?m\.?)?|\b\d{1,2}\s*[ap]\.?m\.?", re.IGNORECASE),
        lambda t, lo: _TIME_HINT.search(lo) is not None,
    ),
    (
        "money",
        re.compile(
            r"[$€£]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:dollars|usd|eur)\b",
            re.IGNORECASE,
        ),
        lambda t, lo: any(c in t for c in "$€£") or "dollar" in lo or "usd" in lo or "eur" in lo,
    ),
    (
        "phone",
        re.compile(r"(?<![\w-])(?:\+?\d{1,3}[\s.-])?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}\b"),
        lambda t, lo: sum(map(str.isdigit, t)) >= 10,
    ),
    (
        "id",
        re.compile(
            r"#\w*\d\w*|\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][\w-]*[A-Za-z0-9]\b|\b\d{5,}\b"
        ),
        _has_digit,
    ),
    ("number", re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])"), _has_digit),
    (
        "quoted",
        re.compile(r"\"([^\"]{2,})\"|“([^”]{2,})”|'([^']{3,})'"),
        lambda t, lo: '"' in t or "“" in t or t.count("'") >= 2,
    ),
)
_TOKEN = re.compile(r"\S+")
_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b")
_NAME_INTRO = re.compile(r"(?:name is|i am|i'm|this is|for)\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+)*)")
_NOT_NAMES = frozenset(
    [
        "I",
        "Hi",
        "Hello",
        "Hey",
        "My",
        "Please",
        "The",
        "Can",
        "Could",
        "Would",
        "Thanks",
        "Thank",
        "Dear",
    ]
)
_WORDS = re.compile(r"[A-Za-z0-9']+")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    text: str
    kind: str


def shape(value: str) -> str:
    """'ORD-123456' -> 'a-999999': the form of a value, to find values of the same form.
    Digits count one by one (ids have fixed lengths); a run of letters is one symbol (words vary)."""
    out: list[str] = []
    for ch in value:
        if ch.isdigit():
            out.append("9")
        elif ch.isalpha():
            if not out or out[-1] != "a":
                out.append("a")
        else:
            out.append(ch)
    return "".join(out)


def number_value(text: str) -> int | float | None:
    cleaned = re.sub(r"[^\d.]", "", text)
    if not cleaned or cleaned.count(".") > 1 or cleaned == ".":
        return None
    value = float(cleaned)
    return int(value) if value.is_integer() and "." not in cleaned else value


def iso_date(text: str) -> str:
    """Normalize a written date to ISO when it names a year; otherwise keep it as written."""
    month_first = re.match(
        r"([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})", text, re.IGNORECASE
    )
    day_first = re.match(
        r"(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)\.?,?\s+(\d{4})", text, re.IGNORECASE
    )
    if month_first:
        month, day, year = month_first.group(1), month_first.group(2), month_first.group(3)
    elif day_first:
        day, month, year = day_first.group(1), day_first.group(2), day_first.group(3)
    else:
        return text
    number = _MONTHS.get(month[:3].lower())
    return f"{year}-{number:02d}-{int(day):02d}" if number else text


class Facts:
    """Everything typed in one text, computed once and shared by all parameters of a call."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.spans: list[Span] = []
        lower = text.lower()
        for kind, pattern, can_match in _PATTERNS:
            if not can_match(text, lower):
                continue
            for m in pattern.finditer(text):
                start, end = m.span()
                if kind == "quoted":
                    group = next(i for i in range(1, 4) if m.group(i) is not None)
                    start, end = m.span(group)
                elif any(s.start < end and start < s.end for s in self.spans if s.kind != "quoted"):
                    continue
                self.spans.append(Span(start, end, text[start:end], kind))
        self.spans.sort(key=lambda s: s.start)

    # Computed on first use: many calls never need them (a lone id or email parameter).
    @cached_property
    def tokens(self) -> list[Span]:
        return [
            Span(m.start(), m.end(), m.group().strip(".,;:!?()[]\"'"), "token")
            for m in _TOKEN.finditer(self.text)
        ]

    @cached_property
    def word_spans(self) -> list[tuple[int, str]]:
        return [(m.start(), stem(m.group().lower())) for m in _WORDS.finditer(self.text)]

    @cached_property
    def stems(self) -> frozenset[str]:
        return frozenset(w for _, w in self.word_spans)

    def of_kind(self, *kinds: str) -> list[Span]:
        return [s for s in self.spans if s.kind in kinds]

    def words_before(self, position: int, window: int = 3) -> list[str]:
        before = [w for start, w in self.word_spans if start < position]
        return before[-window:]

    def names(self) -> list[str]:
        intro = [m.group(1) for m in _NAME_INTRO.finditer(self.text)]
        plain = [m.group() for m in _NAME.finditer(self.text)]
        cleaned = []
        for name in intro + plain:
            parts = name.split()
            while parts and parts[0] in _NOT_NAMES:
                parts = parts[1:]
            if parts:
                cleaned.append(" ".join(parts))
        return list(dict.fromkeys(cleaned))

    def clause_after(
        self, cue_stems: set[str], stop_stems: frozenset[str] = frozenset()
    ) -> str | None:
        """The rest of the sentence after the earliest cue word ('because <the reason>'), cut
        before the first stop word ('<query> under $50')."""
        for start, word in self.word_spans:
            if word not in cue_stems:
                continue
            after = self.text[start:].split(maxsplit=1)
            if len(after) < 2:
                continue
            clause = re.split(r"(?<=[.!?;])\s|[.!?;:,]\s|[.!?;]$", after[1], maxsplit=1)[0]
            if stop_stems:
                kept: list[str] = []
                for token in clause.split():
                    if kept and stem(token.lower().strip(",.")) in stop_stems:
                        break
                    kept.append(token)
                clause = " ".join(kept)
            clause = clause.strip(" .,;:!?\"'")
            if clause:
                return clause
        return None

    def word_after(self, end: int) -> str | None:
        """The stem of the word right after position `end`, if only spaces separate them."""
        rest = self.text[end:]
        m = re.match(r"\s+([A-Za-z0-9']+)", rest)
        return stem(m.group(1).lower()) if m else None

    def number_words(self) -> list[tuple[int, int]]:
        return [(start, NUMBER_WORDS[w]) for start, w in self.word_spans if w in NUMBER_WORDS]


def typed_value(span_text: str, kind: str) -> Any:
    if kind == "date":
        return iso_date(span_text)
    if kind in ("number", "money"):
        return number_value(span_text)
    return span_text.lstrip("#") if kind == "id" and span_text[1:].isdigit() else span_text
