"""Acceptance 2: generated traffic with planted duplicates and near-duplicates, in other
conversations and without conversation ids; no evaluation query reaches training, validation or
the ICL examples, checked by brute force on the files the build writes."""

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import orjson
import pytest

from flywheel_contracts.events import RunRequested
from flywheel_contracts.run_config import RunOverrides
from flywheel_contracts.traffic import ORDER_TOOLS, TrafficConfig, generate_records
from flywheel_datasets.builder import DatasetBuilder
from flywheel_datasets.config import BuildSettings
from flywheel_datasets.dedup_worker import process_deduplication
from flywheel_datasets.formats import EVAL_FILE, TRAIN_FILE, VAL_FILE
from flywheel_datasets.records import Record, content_text
from flywheel_datasets.run_defaults import RunDefaults
from flywheel_datasets.similarity import grams_of, normalize
from services.datasets.tests.factories import FakeEmbedder, FakeSource

pytestmark = pytest.mark.unit

THRESHOLD = 0.8
PLANTED = 300


def _variants(text: str, rng: random.Random) -> Iterator[str]:
    yield text  # an exact copy
    yield text.upper()
    yield text.replace(",", "").replace(".", "!") + "  "
    words = text.split()
    if len(words) > 4:
        i = rng.randrange(len(words))
        yield " ".join([*words[:i], words[i][:-1] or words[i], *words[i + 1 :]])  # a typo
    yield "Please, " + text


def _planted_traffic(seed: int) -> list[Record]:
    """Generated order-tools traffic; copies of some records' user turns, exact or slightly
    changed, are planted elsewhere in the log, in another conversation or with none."""
    rng = random.Random(seed)
    records = list(generate_records(1500, seed, TrafficConfig(workloads=(ORDER_TOOLS,))))
    for original in rng.sample(records, PLANTED):
        copy = orjson.loads(orjson.dumps(original))
        last = next(m for m in reversed(copy["request"]["messages"]) if m["role"] == "user")
        last["content"] = rng.choice(list(_variants(last["content"], rng)))
        if rng.random() < 0.5:
            copy.pop("metadata", None)
        else:
            copy["metadata"]["conversation_id"] = f"planted-{rng.getrandbits(32):08x}"
        records.insert(rng.randrange(len(records)), copy)
    return records


def _jaccard(left: set[int], right: set[int]) -> float:
    shared = len(left & right)
    return shared / (len(left) + len(right) - shared)


def _user_text(messages: list[Record]) -> str:
    return normalize(
        " ".join(content_text(m.get("content")) for m in messages if m["role"] == "user")
    )


def _prefixes(messages: list[Record]) -> list[str]:
    users = [normalize(content_text(m.get("content"))) for m in messages if m["role"] == "user"]
    return [" ".join(users[:end]) for end in range(1, len(users) + 1)]


def _icl_example_queries(system: str) -> list[str]:
    """The user turns of the examples injected into an ICL system prompt."""
    queries = []
    for block in system.split("For example, if the conversation looks like this:\n")[1:]:
        conversation = block.split("\nThen you'll respond with:\n")[0]
        users = [
            line[len("user: ") :]
            for line in conversation.split("\n\n")
            if line.startswith("user: ")
        ]
        queries.append(normalize(" ".join(users)))
    return queries


@pytest.mark.parametrize("seed", [11, 12])
async def test_no_evaluation_query_crosses_into_another_pool(seed: int, tmp_path: Path) -> None:
    request = RunRequested(
        workload_id=ORDER_TOOLS,
        client_id="acme-support",
        overrides=RunOverrides(eval_size=60, limit=5000, random_seed=seed),
    )
    config = RunDefaults.load().resolve(request, UUID(int=seed))
    # The service's own deduplication process: the leak test covers the whole read path.
    builder = DatasetBuilder(
        FakeSource(_planted_traffic(seed)),
        FakeEmbedder().embed,
        BuildSettings(deduplication_process_min_limit=1),
        process_deduplication,
    )
    built = await builder.build(config, datetime.now(UTC), tmp_path)

    def lines(path: Path) -> list[Record]:
        return [orjson.loads(line) for line in path.read_bytes().split(b"\n")]

    evaluation = lines(built.eval_files[EVAL_FILE])
    queries = [_user_text(r["request"]["messages"]) for r in evaluation]
    others = [
        prefix
        for name in (TRAIN_FILE, VAL_FILE)
        for r in lines(built.train_files[name])
        for prefix in _prefixes(r["messages"])
    ]
    icl = [
        q
        for r in lines(built.icl_files[EVAL_FILE])
        for q in _icl_example_queries(r["request"]["messages"][0]["content"])
    ]
    assert len(queries) == 60
    assert len(icl) == 3 * 60

    candidates = [(other, grams_of(other)) for other in others + icl]
    crossing = [
        (query, other)
        for query in queries
        for query_grams in [grams_of(query)]
        for other, other_grams in candidates
        if _jaccard(query_grams, other_grams) >= THRESHOLD
    ]
    assert not crossing
    # The planted copies did reach the build: deduplication and the leak check removed them.
    assert built.stats.duplicates + built.stats.near_duplicates > PLANTED // 2
