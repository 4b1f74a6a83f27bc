"""Grouping by conversation, stratification and its fallback, reproducibility, leak removal."""

from collections import Counter

import pytest

from flywheel_datasets.errors import NotEnoughRecords
from flywheel_datasets.records import conversation_key
from flywheel_datasets.selection import Candidate
from flywheel_datasets.split import (
    EVAL_QUERY_OVERLAP,
    OTHERS,
    SAME_CONVERSATION,
    Split,
    class_quotas,
    eval_overlaps,
    is_stratifiable,
    split_records,
    stratification_labels,
)
from services.datasets.tests.factories import candidate, record

pytestmark = pytest.mark.unit

TOOL_NAMES = ("get_order_status", "cancel_order", "track_shipment")


def _pool(
    n: int, *, tools: tuple[str, ...] = TOOL_NAMES, per_conversation: int = 1
) -> list[Candidate]:
    return [
        candidate(
            record(
                f"Request {i} about order ORD-{i:06d}, reference {i * 7919 % 100003}",
                tool=tools[i % len(tools)],
                conversation=f"conv-{i // per_conversation}",
            )
        )
        for i in range(n)
    ]


def _split(candidates: list[Candidate], eval_size: int = 12, seed: int = 7) -> Split:
    return split_records(
        candidates, eval_size=eval_size, val_ratio=0.2, seed=seed, near_threshold=0.8
    )


def test_a_conversation_never_spans_evaluation_and_the_other_splits() -> None:
    split = _split(_pool(120, per_conversation=3))
    eval_groups = {c.group for c in split.eval}
    assert len(eval_groups) == len(split.eval)  # one record per conversation
    assert not eval_groups & {c.group for c in split.train + split.val}
    assert not {c.group for c in split.train} & {c.group for c in split.val}
    assert split.leaked[SAME_CONVERSATION] == 2 * len(split.eval)
    assert len(split.eval) + len(split.train) + len(split.val) + 24 == 120


def test_without_a_conversation_id_the_first_user_turn_groups_records() -> None:
    opening = record(["I need help with ORD-9", "Cancel it please"])
    follow_up = record(["I need help with ORD-9", "Cancel it please", "And refund me"])
    other = record(["Something else entirely"])
    assert conversation_key(opening, ["I need help with ORD-9"]) == conversation_key(
        follow_up, ["I need help with ORD-9"]
    )
    assert conversation_key(other, ["Something else entirely"]) != conversation_key(
        opening, ["I need help with ORD-9"]
    )
    assert conversation_key(record(conversation="c-1"), ["x"]) == "id:c-1"


def test_evaluation_is_stratified_by_first_tool() -> None:
    tools = ("get_order_status",) * 6 + ("cancel_order",) * 3 + ("track_shipment",)
    split = _split(_pool(200, tools=tools), eval_size=20)
    assert split.stratified
    assert Counter(c.label for c in split.eval) == {
        "get_order_status": 12,
        "cancel_order": 6,
        "track_shipment": 2,
    }


def test_class_quotas_are_proportional_with_one_per_class_at_least() -> None:
    assert class_quotas(Counter(a=60, b=30, c=10), 20) == {"a": 12, "b": 6, "c": 2}
    assert class_quotas(Counter(a=98, b=1, c=1), 3) == {"a": 1, "b": 1, "c": 1}
    assert sum(class_quotas(Counter(a=5, b=5, c=5), 7).values()) == 7


def test_singleton_labels_are_pooled_as_others() -> None:
    pool = [
        *_pool(6, tools=("get_order_status",)),
        candidate(record("Where is my refund for ORD-77?", tool="request_refund")),
        candidate(record("Reset my password for the account", tool="reset_password")),
    ]
    labels = stratification_labels(pool)
    assert labels.count(OTHERS) == 2
    assert set(labels) == {"get_order_status", OTHERS}


@pytest.mark.parametrize(
    ("tools", "eval_size"),
    [(("get_order_status",), 10), (TOOL_NAMES, 2)],
    ids=["one class", "more classes than eval records"],
)
def test_the_fallback_is_a_seeded_random_choice(tools: tuple[str, ...], eval_size: int) -> None:
    pool = _pool(60, tools=tools)
    assert not is_stratifiable(stratification_labels(pool), eval_size)
    split = _split(pool, eval_size=eval_size)
    assert not split.stratified
    assert len(split.eval) == eval_size
    assert [c.doc_id for c in split.eval] == [c.doc_id for c in _split(pool, eval_size).eval]


def test_the_same_seed_gives_the_same_split_and_another_seed_another() -> None:
    pool = _pool(150, per_conversation=2)
    first, again, other = _split(pool, seed=1), _split(pool, seed=1), _split(pool, seed=2)
    assert _ids(first) == _ids(again)
    assert _ids(first) != _ids(other)


def _ids(split: Split) -> tuple[list[str], list[str]]:
    return [c.doc_id for c in split.eval], [c.doc_id for c in split.val]


def test_a_record_that_starts_with_an_evaluation_query_is_kept_out() -> None:
    question = "My parcel for ORD-4242 never arrived, can you check the delivery status?"
    evaluated = candidate(record(question, conversation="a"))
    copied_history = candidate(
        record([question.lower() + "!", "And then refund me"], conversation="b")
    )
    unrelated = candidate(record("Cancel ORD-1111 because I found it cheaper", conversation="c"))
    assert eval_overlaps([evaluated], [copied_history, unrelated], 0.8) == {0}


def test_leaked_records_are_counted_and_removed() -> None:
    # Every record has a twin (same user turns) in another conversation.
    originals = _pool(40)
    twins = [
        candidate(record(list(c.turns), conversation=f"twin-{i}")) for i, c in enumerate(originals)
    ]
    split = _split(originals + twins, eval_size=5)
    evaluated = {c.turns for c in split.eval}
    assert not evaluated & {c.turns for c in split.train + split.val}
    assert split.leaked[EVAL_QUERY_OVERLAP] >= 1
    assert len(split.eval) + len(split.train) + len(split.val) + split.leaked.total() == 80


def test_too_few_conversations_fail_with_the_numbers() -> None:
    pool = _pool(30, per_conversation=10)
    with pytest.raises(NotEnoughRecords, match="30 usable records in 3 conversations"):
        _split(pool, eval_size=5)
    with pytest.raises(NotEnoughRecords, match="training and validation need two"):
        _split(_pool(30, per_conversation=10), eval_size=2)
