"""The LLM judge: the prompts it is asked and robust parsing of its replies.

Two rubrics, as in the blueprint (nmp-contract.md 4.4): tool-call correctness (RATING: 0 or 1)
and generic similarity (an integer 1-10). Replies come in many shapes ("RATING: 1",
"**Rating**: 1", "rating=1.0", "Score: 8/10", "I'd give it a 10."); a reply with no usable
number in range parses to None, and the record counts as a failed scoring, never as a zero.
"""

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

TOOL_CALL_RUBRIC = (
    "You judge whether a predicted tool call does what the ground-truth call does.\n"
    "Rate 0 if the prediction is null, empty or invalid, if a function name differs, if the "
    "arguments are not a JSON object, or if any argument of the ground truth is missing or "
    "different (identifiers and numbers exactly, free text by meaning). Otherwise rate 1.\n"
    "Answer exactly as:\nRATING: <0 or 1>\nEXPLANATION: <one sentence>"
)

SIMILARITY_RUBRIC = (
    "Rate from 1 to 10 how close the candidate answer is to the reference answer in meaning.\n"
    "10: nearly identical meaning. 8-9: same key information, one minor detail off. "
    "6-7: rough overlap. 4-5: related but wrong on most core content. "
    "2-3: largely irrelevant or incorrect. 1: irrelevant or empty.\n"
    "Reply with the integer only."
)

SIMILARITY_MIN, SIMILARITY_MAX = 1, 10

_NUMBER = r"(\d+(?:\.\d+)?)"
_RATING_LABELLED = re.compile(
    r"rating[\s*_\"']*(?:is|of)?[\s*\"']*[:=\-]?[\s*\"']*" + _NUMBER, re.IGNORECASE
)
_SIMILARITY_LABELLED = re.compile(
    r"(?:score|rating|similarity|grade)[\s*_\"']*(?:is|of)?[\s*\"']*[:=\-]?[\s*\"']*" + _NUMBER,
    re.IGNORECASE,
)
# Mentions of the scale itself, which must not be read as the score.
_SCALE = re.compile(r"\b1\s*(?:-|\u2013|to)\s*10\b|(?:/|\bout of\s*)10\b", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"(?<![\d.])" + _NUMBER + r"(?![\d.]*\d)")
_PLACEHOLDER = re.compile(r"<[^>]*>")


def tool_call_prompt(
    reference: Sequence[Mapping[str, Any]], predicted: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    user = (
        f"*Ground Truth*: {json.dumps(list(reference), sort_keys=True)}\n"
        f"*Prediction*: {json.dumps(list(predicted), sort_keys=True)}"
    )
    return [{"role": "system", "content": TOOL_CALL_RUBRIC}, {"role": "user", "content": user}]


def similarity_prompt(
    messages: Sequence[Mapping[str, Any]], reference: str, candidate: str
) -> list[dict[str, str]]:
    user = (
        f"TASK / QUESTION:\n{json.dumps(list(messages))}\n---\n"
        f"REFERENCE ANSWER:\n{reference}\n---\n"
        f"CANDIDATE ANSWER:\n{candidate}\n---"
    )
    return [{"role": "system", "content": SIMILARITY_RUBRIC}, {"role": "user", "content": user}]


def _as_int(text: str) -> int | None:
    value = float(text)
    return int(value) if value.is_integer() else None


def parse_rating(reply: str | None) -> int | None:
    """0 or 1 from a correctness reply; None when the reply holds no valid rating."""
    if not reply:
        return None
    text = _PLACEHOLDER.sub("", reply)  # "RATING: <0 or 1>" echoed from the rubric
    from_json = _json_number(text, "rating")
    candidates = [from_json] if from_json is not None else []
    candidates += [m.group(1) for m in _RATING_LABELLED.finditer(text)]
    stripped = text.strip().strip("*").strip()
    if re.fullmatch(_NUMBER, stripped):
        candidates.append(stripped)
    for candidate in candidates:
        value = _as_int(candidate)
        if value in (0, 1):
            return value
    return None


def parse_similarity(reply: str | None) -> int | None:
    """1-10 from a similarity reply ("10" is ten); None when no score in range is found."""
    if not reply:
        return None
    text = _PLACEHOLDER.sub("", reply)
    from_json = _json_number(text, "score") or _json_number(text, "similarity")
    labelled = [m.group(1) for m in _SIMILARITY_LABELLED.finditer(_SCALE.sub(" ", text))]
    bare = [m.group(1) for m in _BARE_NUMBER.finditer(_SCALE.sub(" ", text))]
    for candidate in [*([from_json] if from_json else []), *labelled, *bare[:1]]:
        value = _as_int(candidate)
        if value is not None and SIMILARITY_MIN <= value <= SIMILARITY_MAX:
            return value
    return None


def _json_number(text: str, key: str) -> str | None:
    """`{"rating": 1}`-style replies, anywhere in the text."""
    match = re.search(r"\{[^{}]*\}", text)
    if match is None:
        return None
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for name, value in data.items():
        if str(name).lower() == key and isinstance(value, int | float | str):
            text_value = str(value).strip()
            return text_value if re.fullmatch(_NUMBER, text_value) else None
    return None
