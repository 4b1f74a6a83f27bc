"""ICL examples: pool, uniform and semantic choice, the token budget, injection."""

from collections.abc import Sequence

import pytest
import structlog

from flywheel_contracts.run_config import ExampleSelection, IclConfig, WorkloadType
from flywheel_datasets.errors import EmbeddingUnavailable
from flywheel_datasets.icl import (
    EXAMPLE_IDS,
    ICL_HEADER,
    LEXICAL_SIMILARITY,
    Example,
    example_pool,
    example_text,
    fit,
    icl_records,
    inject,
    record_budget,
    semantic_groups,
    uniform_bins,
    uniform_groups,
)
from flywheel_datasets.similarity import lexical_similarities
from flywheel_datasets.tokens import estimate_tokens
from services.datasets.tests.factories import FakeEmbedder, candidate, record

pytestmark = pytest.mark.unit


def _example(label: str, tokens: int, query: str = "q") -> Example:
    return Example(label=label, text=f"{label}-{tokens}", tokens=tokens, query=query)


def test_the_example_text_follows_the_blueprint_format() -> None:
    text = example_text(record(["Hello", "Where is ORD-5?"], arguments={"order_id": "ORD-5"}))
    assert text.startswith("For example, if the conversation looks like this:\nuser: Hello\n\n")
    assert "system:" not in text
    assert "\nThen you'll respond with:\nassistant: \nTool calls:\n[\n  {" in text
    assert '"order_id": "ORD-5"' in text


def test_uniform_bins_favour_the_first_tools() -> None:
    assert uniform_bins(3, 2) == [2, 1]
    assert uniform_bins(3, 5) == [1, 1, 1, 0, 0]
    assert uniform_bins(6, 3) == [2, 2, 2]


def test_uniform_selection_takes_the_shortest_per_tool() -> None:
    pool = [
        _example("b", 30),
        _example("a", 50),
        _example("a", 10),
        _example("b", 5),
        _example("c", 1),
    ]
    groups = uniform_groups(pool, 3, WorkloadType.TOOL_CALLING)
    assert [[e.tokens for e in g] for g in groups] == [[10], [5], [1]]
    generic = uniform_groups(pool, 2, WorkloadType.GENERIC)
    assert [[e.tokens for e in g] for g in generic] == [[1, 5]]


def test_fit_stays_within_the_budget_round_robin() -> None:
    groups = [[_example("a", 100), _example("a", 10)], [_example("b", 20)], [_example("c", 500)]]
    separator = estimate_tokens("\n\n")
    taken = fit(groups, budget=130 + 3 * separator, max_examples=3)
    # a-100, b-20 fit; c-500 does not and is skipped; a-10 still fits after it.
    assert [e.text for e in taken] == ["a-100", "b-20", "a-10"]
    assert fit(groups, budget=0, max_examples=3) == []
    assert len(fit(groups, budget=10_000, max_examples=2)) == 2


def test_a_record_too_big_for_the_context_gets_no_examples() -> None:
    config = IclConfig(max_context_length=600, reserved_tokens=500, max_examples=3)
    source = record("x" * 2000)
    assert record_budget(source, config) < 0
    assert fit([[_example("a", 1)]], record_budget(source, config), 3) == []


def test_semantic_choice_mixes_relevance_and_tool_coverage() -> None:
    ranked = [
        _example("a", 1),
        _example("a", 2),
        _example("a", 3),
        _example("b", 4),
        _example("c", 5),
    ]
    config = IclConfig(max_examples=3, relevance_ratio=0.34)
    groups = semantic_groups(ranked, config, WorkloadType.TOOL_CALLING)
    assert [[e.tokens for e in g] for g in groups] == [[1], [4], [5]]
    config = IclConfig(max_examples=3, relevance_ratio=1.0)
    assert [
        [e.tokens for e in g] for g in semantic_groups(ranked, config, WorkloadType.TOOL_CALLING)
    ] == [[1, 2, 3]]


def test_injection_prepends_to_the_system_message_or_adds_one() -> None:
    examples = [_example("a", 1)]
    with_system = inject(record(system="Be brief."), examples)
    content = with_system["request"]["messages"][0]["content"]
    assert content == f"{ICL_HEADER}\n\na-1\n\nBe brief."
    without = inject(record(system=None), examples)
    assert without["request"]["messages"][0] == {
        "role": "system",
        "content": f"{ICL_HEADER}\n\na-1",
    }
    original = record(system="Be brief.")
    inject(original, examples)
    assert original["request"]["messages"][0]["content"] == "Be brief."


def test_the_pool_covers_every_tool_within_its_size() -> None:
    train = [candidate(record(f"Order question {i}", tool="get_order_status")) for i in range(50)]
    train.append(candidate(record("Please cancel my order ORD-3", tool="cancel_order")))
    pool = example_pool(train, 5, seed=1)
    assert len(pool) == 5
    assert {e.label for e in pool} == {"get_order_status", "cancel_order"}
    assert [e.text for e in pool] == [e.text for e in example_pool(train, 5, seed=1)]


async def test_semantic_selection_picks_the_nearest_examples() -> None:
    train = [
        candidate(record("Where is my parcel ORD-1 tracking", tool="track_shipment")),
        candidate(record("Cancel the order ORD-2 please", tool="cancel_order")),
        candidate(record("What is the status of order ORD-3", tool="get_order_status")),
    ]
    pool = example_pool(train, 10, seed=1)
    config = IclConfig(max_examples=1, example_selection=ExampleSelection.SEMANTIC_SIMILARITY)
    embedder = FakeEmbedder()
    result = await icl_records(
        [record("please cancel order ORD-9")],
        pool,
        config,
        WorkloadType.TOOL_CALLING,
        embedder.embed,
    )
    system = result.records[0]["request"]["messages"][0]["content"]
    assert "user: Cancel the order ORD-2 please" in system
    assert "parcel" not in system
    assert result.examples == 1
    assert len(embedder.calls) == 1  # the pool and the queries in one call


_TRAIN = [
    ("Where is my parcel ORD-1 tracking", "track_shipment", "doc-track"),
    ("Cancel the order ORD-2 please", "cancel_order", "doc-cancel"),
    ("What is the status of order ORD-3", "get_order_status", "doc-status"),
]
_QUERIES = ["please cancel order ORD-9", "tracking for my parcel ORD-8"]


async def _unavailable(texts: Sequence[str]) -> list[list[float]]:
    raise EmbeddingUnavailable("embeddings from model failed: 401 Unauthorized")


async def test_every_icl_record_lists_the_ids_of_the_examples_it_was_shown() -> None:
    pool = example_pool([candidate(record(u, tool=t), d) for u, t, d in _TRAIN], 10, seed=1)
    config = IclConfig(max_examples=1, example_selection=ExampleSelection.SEMANTIC_SIMILARITY)
    result = await icl_records(
        [record(q) for q in _QUERIES], pool, config, WorkloadType.TOOL_CALLING, FakeEmbedder().embed
    )
    assert [r[EXAMPLE_IDS] for r in result.records] == [["doc-cancel"], ["doc-track"]]
    assert result.selection == "semantic_similarity"
    assert result.fallback_reason is None
    assert inject(record(), [])[EXAMPLE_IDS] == []


async def test_without_embeddings_semantic_selection_falls_back_to_lexical_similarity() -> None:
    pool = example_pool([candidate(record(u, tool=t), d) for u, t, d in _TRAIN], 10, seed=1)
    config = IclConfig(max_examples=1, example_selection=ExampleSelection.SEMANTIC_SIMILARITY)
    with structlog.testing.capture_logs() as logs:
        result = await icl_records(
            [record(q) for q in _QUERIES], pool, config, WorkloadType.TOOL_CALLING, _unavailable
        )
    # Chosen per record, by the words of the last user message.
    assert [r[EXAMPLE_IDS] for r in result.records] == [["doc-cancel"], ["doc-track"]]
    assert result.selection == LEXICAL_SIMILARITY
    assert result.fallback_reason is not None and "401" in result.fallback_reason
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [w["event"] for w in warnings] == ["icl.embeddings_unavailable"]
    assert warnings[0]["fallback"] == LEXICAL_SIMILARITY and "401" in warnings[0]["reason"]


async def test_uniform_selection_stays_selectable_and_shows_every_record_the_same() -> None:
    pool = example_pool([candidate(record(u, tool=t), d) for u, t, d in _TRAIN], 10, seed=1)
    config = IclConfig(max_examples=1, example_selection=ExampleSelection.UNIFORM_DISTRIBUTION)
    result = await icl_records(
        [record(q) for q in _QUERIES], pool, config, WorkloadType.TOOL_CALLING, _unavailable
    )
    first, second = (r[EXAMPLE_IDS] for r in result.records)
    assert first == second and len(first) == 1
    assert result.selection == "uniform_distribution"


def test_lexical_similarity_is_a_cosine_over_character_grams() -> None:
    scores = lexical_similarities(
        ["Where is my order ORD-5?", "cancel my subscription"],
        ["where is order ord 7", "Please cancel the subscription", "where is my order ord 5"],
    )
    assert scores.shape == (2, 3)
    assert scores[0].argmax() == 2 and scores[1].argmax() == 1
    assert abs(float(scores[0, 2]) - 1.0) < 1e-6  # equal once normalized
    assert lexical_similarities([], ["a"]).shape == (0, 1)
