"""Acceptance 1, judge replies: odd formats parse to the intended rating, or to None (a failed
scoring, excluded), never to a wrong number."""

import pytest

from flywheel_evaluator.judging import parse_rating, parse_similarity, tool_call_prompt

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("RATING: 1\nEXPLANATION: matches", 1),
        ("RATING: 0\nEXPLANATION: wrong name", 0),
        ("rating:1", 1),
        ("**RATING:** 1", 1),
        ("Rating - 0. The prediction is empty.", 0),
        ("RATING: 1.0", 1),
        ("RATING: 1/1", 1),
        ('{"rating": 1, "explanation": "ok"}', 1),
        ("1", 1),
        ("  0\n", 0),
        ("Answer as RATING: <0 or 1>\nRATING: 0", 0),
        ("The rating is 1", 1),
        ("RATING: 5", None),
        ("RATING: 0.5", None),
        ("I cannot decide.", None),
        ("", None),
        (None, None),
    ],
)
def test_rating(reply: str | None, rating: int | None) -> None:
    assert parse_rating(reply) == rating


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("10", 10),  # the blueprint's `(\d)` read this as 1
        ("7", 7),
        ("**9**", 9),
        ("Score: 8/10", 8),
        ("10/10", 10),
        ("Similarity: 10 out of 10", 10),
        ("On a scale of 1 to 10, I'd give it a 7.", 7),
        ("On a 1-10 scale: 4", 4),
        ("3 out of 10", 3),
        ('{"score": 6}', 6),
        ("Rating: 1 (irrelevant)", 1),
        ("The candidate answer deserves a 10.", 10),
        ("0", None),
        ("11", None),
        ("7.5", None),
        ("no idea", None),
        ("", None),
        (None, None),
    ],
)
def test_similarity(reply: str | None, score: int | None) -> None:
    assert parse_similarity(reply) == score


def test_tool_call_prompt_has_the_judge_sections() -> None:
    system, user = tool_call_prompt([{"function": {"name": "a"}}], [])
    assert "RATING" in system["content"]
    assert user["content"].index("*Ground Truth*:") < user["content"].index("*Prediction*:")
