"""Exact and near deduplication on the user turns, and the similarity underneath."""

import random

import numpy as np
import pytest

from flywheel_datasets.dedup import VERDICTS, Deduplicator, decide
from flywheel_datasets.rules import Rule
from flywheel_datasets.similarity import (
    NearDuplicateIndex,
    grams_of,
    jaccard,
    normalize,
    sketches,
)

pytestmark = pytest.mark.unit

BASE = "Hi, I ordered a blue kettle last week and it still has not arrived, where is ORD-123456?"


def _offer(dedup: Deduplicator, *turns: str) -> Rule | None:
    (sketch,) = sketches([normalize("\n".join(turns))])
    return dedup.offer(list(turns), sketch)


def test_an_exact_repeat_of_the_user_turns_is_a_duplicate() -> None:
    dedup = Deduplicator(0.8)
    assert _offer(dedup, "first", BASE) is None
    assert _offer(dedup, "first", BASE) is Rule.DUPLICATE


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


def test_a_different_request_is_kept() -> None:
    dedup = Deduplicator(0.8)
    others = [
        BASE,
        "Please cancel my subscription to the monthly coffee box.",
        BASE.replace("ORD-123456", "ORD-987654").replace("blue", "red"),
    ]
    assert [_offer(dedup, text) for text in others] == [None, None, None]
    assert [_offer(dedup, text) for text in others] == [Rule.DUPLICATE] * 3  # all remembered


def test_a_batch_is_decided_in_order_and_each_stream_on_its_own() -> None:
    streams = [Deduplicator(0.8), Deduplicator(0.8)]
    offers = [(0, [BASE]), (1, [BASE]), (0, [BASE]), (1, [BASE.upper()]), (0, ["other words"])]
    verdicts = [VERDICTS[code] for code in decide(streams, offers)]
    assert verdicts == [None, None, Rule.DUPLICATE, Rule.NEAR_DUPLICATE, None]


def test_jaccard_is_exact_on_4_grams() -> None:
    assert jaccard("abcde", "abcde") == 1.0
    assert jaccard("abcde", "abcdf") == pytest.approx(1 / 3)  # {abcd} of {abcd, bcde, bcdf}
    assert jaccard("abcd", "wxyz") == 0.0
    assert jaccard("ab", "ab  ") == 1.0  # short texts are padded to one gram


def test_grams_are_4_byte_windows_of_the_utf8_text() -> None:
    assert grams_of("abcde") == {int.from_bytes(b"abcd"), int.from_bytes(b"bcde")}
    assert len(grams_of("é ab")) == 2  # "é" is two bytes: five bytes, two windows


def test_a_batch_of_sketches_holds_each_texts_distinct_grams_sorted() -> None:
    texts = ["", "a", "abab abab abab", "naïve café", normalize(BASE), "x" * 3, "same", "same"]
    for text, sketch in zip(texts, sketches(texts), strict=True):
        assert sketch.grams.tolist() == sorted(grams_of(text)), text


def test_the_index_decides_as_the_exact_jaccard_does() -> None:
    # With the prefilter off (margin = threshold), only LSH banding could miss a close pair,
    # and at these similarities it does not: the index must agree with brute force.
    rng = random.Random(7)
    vocabulary = [
        f"{stem}{n}" for stem in ("order", "parcel", "refund", "kettle") for n in range(40)
    ]
    originals = [" ".join(rng.choices(vocabulary, k=rng.randint(6, 14))) for _ in range(60)]
    edits = [
        text.replace("e", "é", 1) + rng.choice(["", " ok", " thanks a lot"]) for text in originals
    ]
    texts = [t for pair in zip(originals, edits, strict=True) for t in pair]
    index = NearDuplicateIndex(0.8, margin=0.8)
    added: list[str] = []
    found = 0
    for text, sketch in zip(texts, sketches(texts), strict=True):
        match = index.find(sketch)
        best = max((jaccard(text, other) for other in added), default=0.0)
        assert (match is not None) == (best >= 0.8), (text, best)
        if match is None:
            index.add(sketch)
            added.append(text)
        else:
            assert jaccard(text, added[match]) >= 0.8
            found += 1
    assert 0 < found < len(edits)  # some edits are near-duplicates, some are not


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
    texts = [normalize(BASE), normalize(BASE.replace("arrived", "arived"))]
    base, typo = sketches(texts)
    similarity = jaccard(*texts)
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


def test_a_batch_lookup_agrees_with_single_lookups_on_templated_traffic() -> None:
    # Templated texts share bands by the hundred: the lookups then see only the latest entries
    # of those buckets, and the batch must see the same ones.
    rng = random.Random(11)
    templates = ["where is my order ord {n} it is late", "please refund order ord {n} thanks"]
    added = [rng.choice(templates).format(n=rng.randrange(10**6)) for _ in range(400)]
    index = NearDuplicateIndex(0.8)
    for sketch in sketches(added):
        index.add(sketch)
    queries = [rng.choice(added) + rng.choice(["", " now", " x"]) for _ in range(300)]
    queries += [rng.choice(templates).format(n=rng.randrange(10**6)) for _ in range(100)]
    expected = [index.find(sketch) for sketch in sketches(queries)]
    assert index.find_many(queries) == expected
    assert 100 < sum(match is not None for match in expected) < len(queries)
