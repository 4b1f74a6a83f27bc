"""The judge: it reads the two texts in its prompt and compares them.

Two prompt families from the blueprint's evaluation configs (reference/nmp-contract.md, 4.4):
- similarity: sections REFERENCE ANSWER / CANDIDATE ANSWER, reply is an integer 1-10;
- tool-call correctness: "*Ground Truth*: ..." / "*Prediction*: ...", reply "RATING: 0|1".
"""

from __future__ import annotations

import re
from typing import Any

from flywheel_nmp_emulator.models.examples import parse_arguments, parse_literal
from flywheel_nmp_emulator.models.text import text_similarity

_GT = re.compile(r"\*?ground truth\*?\s*:", re.IGNORECASE)
_PRED = re.compile(r"\*?prediction\*?\s*:", re.IGNORECASE)
_SECTION = re.compile(
    r"^[\s#*=\-\[<]*(TASK|QUESTION|REFERENCE ANSWER|CANDIDATE ANSWER)\b[^\n]*$",
    re.IGNORECASE | re.MULTILINE,
)
_DELIMITER_LINE = re.compile(r"^\s*[-=*#_~`<>\[\]/ ]{3,}\s*$", re.MULTILINE)
# Values up to this many words are identifiers (must match exactly); longer ones are prose.
SHORT_VALUE_WORDS = 3
PROSE_SIMILARITY = 0.5


def is_tool_call_prompt(text: str) -> bool:
    return bool(_GT.search(text) and _PRED.search(text))


def is_similarity_prompt(text: str) -> bool:
    upper = text.upper()
    return "REFERENCE ANSWER" in upper and "CANDIDATE ANSWER" in upper


def _sections(text: str) -> dict[str, str]:
    marks = list(_SECTION.finditer(text))
    found: dict[str, str] = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = _DELIMITER_LINE.sub("", text[mark.end() : end])
        # The heading line may carry the text itself: "REFERENCE ANSWER: ...".
        inline = mark.group(0).split(":", 1)[1] if ":" in mark.group(0) else ""
        found[mark.group(1).upper()] = (inline + "\n" + body).strip()
    return found


def similarity_score(text: str) -> int:
    """1-10 by the blueprint rubric, from how close the candidate is to the reference."""
    sections = _sections(text)
    reference = sections.get("REFERENCE ANSWER", "")
    candidate = sections.get("CANDIDATE ANSWER", "")
    if not candidate.strip() or candidate.strip().lower() in ("none", "null"):
        return 1
    if reference.strip() == candidate.strip():
        return 10
    return max(1, min(10, round(1 + 9 * text_similarity(reference, candidate))))


def _calls(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    calls = []
    for call in value:
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            return None
        calls.append(fn)
    return calls


def _same_value(truth: Any, predicted: Any) -> bool:
    if isinstance(truth, str) and isinstance(predicted, str):
        if len(truth.split()) <= SHORT_VALUE_WORDS:
            return truth.strip() == predicted.strip()
        return text_similarity(truth, predicted) >= PROSE_SIMILARITY
    if isinstance(truth, bool) or isinstance(predicted, bool):
        return truth is predicted
    if isinstance(truth, int | float) and isinstance(predicted, int | float | str):
        try:
            return float(truth) == float(predicted)
        except ValueError:
            return False
    return bool(truth == predicted)


def tool_call_rating(text: str) -> tuple[int, str]:
    """The strict tool-call rubric: name exact, every ground-truth key present, values equal
    (identifiers exactly, prose by meaning)."""
    gt_match, pred_match = _GT.search(text), _PRED.search(text)
    if gt_match is None or pred_match is None:
        return 0, "The prompt holds no ground truth and prediction to compare."
    truth_text = (
        text[gt_match.end() : pred_match.start()]
        if gt_match.start() < pred_match.start()
        else text[gt_match.end() :]
    )
    pred_text = (
        text[pred_match.end() :]
        if pred_match.start() > gt_match.start()
        else text[pred_match.end() : gt_match.start()]
    )
    truth = _calls(parse_literal(truth_text))
    predicted = _calls(parse_literal(pred_text))
    if predicted is None:
        return 0, "The prediction is empty, null or not a valid tool call."
    if truth is None:
        return 0, "The ground truth could not be read."
    if len(predicted) < len(truth):
        return 0, f"Expected {len(truth)} tool call(s), got {len(predicted)}."
    for expected, got in zip(truth, predicted, strict=False):
        if expected["name"] != got["name"]:
            return 0, f"Function name {got['name']!r} does not match {expected['name']!r}."
        raw = got.get("arguments", {})
        args = parse_arguments(raw)
        if not isinstance(raw, dict) and not args and raw not in ("{}", "", None):
            return 0, "The arguments are not a JSON object."
        for key, value in parse_arguments(expected.get("arguments", {})).items():
            if key not in args:
                return 0, f"Argument {key!r} is missing."
            if not _same_value(value, args[key]):
                return 0, f"Argument {key!r} is {args[key]!r}, expected {value!r}."
    return 1, "The function name matches and every argument is equivalent to the ground truth."


def judge_reply(text: str) -> str | None:
    """The judge's reply to a prompt of a known family, else None (answer as a plain model)."""
    if is_tool_call_prompt(text):
        rating, why = tool_call_rating(text)
        return f"RATING: {rating}\nEXPLANATION: {why}"
    if is_similarity_prompt(text):
        return str(similarity_score(text))
    return None
