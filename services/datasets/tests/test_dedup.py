"""Exact and near deduplication on the user turns, and the similarity underneath."""

import numpy as np
import pytest

from flywheel_datasets.dedup import Deduplicator
from flywheel_datasets.rules import Rule
from flywheel_datasets.similarity import NearDuplicateIndex, jaccard, normalize, sketches

pytestmark = pytest.mark.unit

BASE = "Hi, I ordered a blue kettle last week and it still has not arrived, where is ORD-123456?"


def _offer(dedup: Deduplicator, *turns: str) -> Rule | None:
    (sketch,) = sketches([normalize("\n".join(turns))])
    return dedup.offer(list(turns), sketch)


def test_an_exact_repeat_of_the_user_turns_is_a_duplicate() -> None:
    dedup = Deduplicator(0.8)
    assert _offer(dedup, "first", BASE) is None
    assert _offer(dedup, "first", BASE) is Rule.DUPLICATE
    assert (dedup.duplicates, dedup.near_duplicates) == (1, 0)


@pytest.mark.parametrize(
    "variant",
    [
        BASE.upper(),
        BASE.replace(",", "").replace("?", "!!"),
        "  " + BASE.replace(" ", "   ") + "\n",
        BASE.replace("arrived", "arived"),  # a typo
        BASE + " Thanks",  # a word added
    ],
)
def test_near_copies_are_near_duplicates(variant: str) -> None:
    dedup = Deduplicator(0.8)
    assert _offer(dedup, BASE) is None
    assert _offer(dedup, variant) is Rule.NEAR_DUPLICATE
    assert (dedup.duplicates, dedup.near_duplicates) == (0, 1)


def test_a_different_request_is_kept() -> None:
    dedup = Deduplicator(0.8)
    assert _offer(dedup, BASE) is None
    assert _offer(dedup, "Please cancel my subscription to the monthly coffee box.") is None
    assert _offer(dedup, BASE.replace("ORD-123456", "ORD-987654").replace("blue", "red")) is None
    assert len(dedup) == 3


def test_jaccard_is_exact_on_4_grams() -> None:
    assert jaccard("abcde", "abcde") == 1.0
    assert jaccard("abcde", "abcdf") == pytest.approx(1 / 3)  # {abcd} of {abcd, bcde, bcdf}
    assert jaccard("abcd", "wxyz") == 0.0


def test_normalization_ignores_case_punctuation_and_spacing() -> None:
    assert normalize("  Héllo,   WORLD!! ") == "héllo world"
    assert normalize("ﬁne") == "fine"  # NFKC folds the ligature


def test_signatures_are_deterministic_and_track_similarity() -> None:
    first, again, other = sketches([BASE, BASE, "something else entirely, about refunds"])
    assert np.array_equal(first.signature, again.signature)
    assert first.bands == again.bands
    assert np.count_nonzero(first.signature == other.signature) < 16


def test_the_index_respects_its_threshold() -> None:
    loose, strict = NearDuplicateIndex(0.5), NearDuplicateIndex(0.95)
    base, typo = sketches([normalize(BASE), normalize(BASE.replace("arrived", "arived"))])
    similarity = jaccard(base.text, typo.text)
    assert 0.8 < similarity < 0.95
    loose.add(base)
    strict.add(base)
    assert loose.find(typo) == 0
    assert strict.find(typo) is None


def test_a_batch_lookup_answers_like_single_lookups() -> None:
    index = NearDuplicateIndex(0.8)
    for text in [BASE, "please cancel my subscription to the monthly coffee box"]:
        (sketch,) = sketches([normalize(text)])
        index.add(sketch)
    texts = [
        normalize(text)
        for text in [
            BASE.replace("arrived", "arived"),
            "completely unrelated words about the weather in lisbon",
            "Please cancel my subscription to the monthly coffee box!",
            BASE.replace("ORD-123456", "ORD-987654").replace("blue", "red"),
        ]
    ]
    expected = [index.find(sketch) for sketch in sketches(texts)]
    assert index.find_many(texts) == expected
    assert expected[0] == 0 and expected[2] == 1 and expected[1] is None
    assert NearDuplicateIndex(0.8).find_many(texts) == [None] * len(texts)
