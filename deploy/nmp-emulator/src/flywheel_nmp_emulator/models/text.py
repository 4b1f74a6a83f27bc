"""Text features shared by every model: tokens, light stemming, sparse vectors, cosine.

Sparse vectors are plain dicts: the texts are short (a request, a tool description), so dict
arithmetic beats building numpy arrays per request.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

SparseVector = dict[str, float]

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# fmt: off
STOPWORDS = frozenset((
    "a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do",
    "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has",
    "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now",
    "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own",
    "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until",
    "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "you", "your", "yours", "yourself", "please", "hi", "hello",
    "hey", "thanks", "thank", "want", "need", "like", "would", "could", "get", "also", "im",
    "ive", "id", "dont", "can't", "cant", "let", "lets", "just",
))
# fmt: on

# A small general lexicon of paraphrases; only large models "know" it (see capacity.py).
_SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("refund", "reimburse", "reimbursement", "money", "repay"),
    ("cancel", "cancellation", "terminate", "stop", "abort", "revoke"),
    (
        "track",
        "tracking",
        "where",
        "status",
        "shipment",
        "shipped",
        "arrive",
        "delivery",
        "deliver",
    ),
    ("return", "send", "exchange"),
    ("address", "move", "moved", "relocate", "location"),
    ("password", "login", "log", "sign", "signin", "credential", "locked"),
    ("buy", "purchase", "order", "checkout"),
    ("invoice", "bill", "billing", "charge", "charged", "payment", "pay", "receipt"),
    ("book", "booking", "schedule", "reserve", "reservation", "appointment"),
    ("complaint", "problem", "issue", "broken", "damaged", "defective", "faulty", "wrong"),
    ("update", "change", "modify", "edit", "correct"),
    ("find", "search", "look", "lookup", "browse", "available", "availability"),
    ("account", "profile", "membership", "subscription", "plan"),
    ("agent", "human", "person", "representative", "escalate", "supervisor", "manager"),
    ("product", "item", "article"),
    ("price", "cost", "much", "quote", "fee"),
    ("weather", "forecast", "temperature", "rain"),
)


_SUFFIXES: tuple[tuple[str, str, int], ...] = (
    # (suffix, replacement, minimum word length for the rule to apply)
    ("ations", "", 8),
    ("ation", "", 7),
    ("ments", "", 7),
    ("ment", "", 6),
    ("ings", "", 6),
    ("ing", "", 5),
    ("ies", "y", 5),
    ("ied", "y", 5),
    ("ed", "", 5),
    ("es", "", 5),
    ("s", "", 4),
)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A deliberately light stemmer, enough to join refund/refunds/refunded and cancel/cancelled."""
    if len(word) <= 3 or word.isdigit() or word.endswith(("ss", "us", "is")):
        return word
    base = word
    for suffix, replacement, min_len in _SUFFIXES:
        if word.endswith(suffix) and len(word) >= min_len:
            base = word[: len(word) - len(suffix)] + replacement
            # "shipped" -> "shipp" -> "ship": undo the doubled consonant of -ed/-ing forms.
            if not replacement and len(base) > 3 and base[-1] == base[-2] and base[-1] not in "sz":
                base = base[:-1]
            break
    # "change"/"changed" -> "chang": a final silent e is dropped on both sides.
    if len(base) > 4 and base.endswith("e"):
        base = base[:-1]
    return base


def _build_synonyms() -> dict[str, str]:
    table: dict[str, str] = {}
    for group in _SYNONYM_GROUPS:
        head = stem(group[0])
        for word in group:
            table.setdefault(stem(word), head)
    return table


SYNONYMS = _build_synonyms()


def split_identifier(name: str) -> str:
    """'getOrderStatus' / 'get_order_status' -> 'get order status'."""
    return _CAMEL.sub(" ", name).replace("_", " ").replace("-", " ").replace(".", " ")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True, slots=True)
class Featurizer:
    """Turns text into a sparse vector. The switches are what a model's size buys it."""

    stem: bool = True
    bigrams: bool = False
    char_ngrams: bool = False
    synonyms: bool = False

    def terms(self, text: str) -> list[str]:
        toks = [w for w in words(text) if w not in STOPWORDS]
        if self.stem:
            toks = [stem(w) for w in toks]
        if self.synonyms:
            toks = [SYNONYMS.get(w, w) for w in toks]
        return toks

    def vector(self, text: str) -> SparseVector:
        # Words decide; pairs (0.5) and trigrams (0.2) only refine, so they weigh less.
        toks = self.terms(text)
        vec: SparseVector = {}
        for tok in toks:
            vec[tok] = vec.get(tok, 0.0) + 1.0
        if self.bigrams:
            for a, b in itertools.pairwise(toks):
                key = f"{a}_{b}"
                vec[key] = vec.get(key, 0.0) + 0.5
        if self.char_ngrams:
            for tok in toks:
                padded = f"<{tok}>"
                for i in range(len(padded) - 2):
                    key = "#" + padded[i : i + 3]
                    vec[key] = vec.get(key, 0.0) + 0.2
        return vec


def add_into(target: SparseVector, source: Mapping[str, float], scale: float = 1.0) -> None:
    for key, value in source.items():
        target[key] = target.get(key, 0.0) + value * scale


def log_scale(vec: Mapping[str, float]) -> SparseVector:
    """Sublinear term frequency, so a word repeated in a long description does not dominate."""
    return {k: 1.0 + math.log(v) if v > 1.0 else v for k, v in vec.items()}


def norm(vec: Mapping[str, float]) -> float:
    return math.sqrt(sum(v * v for v in vec.values()))


def normalize(vec: Mapping[str, float]) -> SparseVector:
    n = norm(vec)
    return {k: v / n for k, v in vec.items()} if n else dict(vec)


def dot(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(k, 0.0) for k, v in a.items())


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    na, nb = norm(a), norm(b)
    return dot(a, b) / (na * nb) if na and nb else 0.0


def text_similarity(a: str, b: str) -> float:
    """A symmetric 0..1 similarity of two texts (words plus character trigrams)."""
    feats = Featurizer(stem=True, bigrams=True, char_ngrams=True)
    return cosine(feats.vector(a), feats.vector(b))
