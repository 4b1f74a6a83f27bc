"""The whole build against fake ports: files, counts, statistics and the failures."""

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import orjson
import pytest
import structlog

from flywheel_contracts.events import RunRequested
from flywheel_contracts.run_config import RunConfig, RunOverrides, WorkloadType
from flywheel_datasets.builder import Built, DatasetBuilder
from flywheel_datasets.config import BuildSettings, PiiSettings
from flywheel_datasets.dedup_worker import Deduplication, inline_deduplication
from flywheel_datasets.errors import EmbeddingUnavailable, NotEnoughRecords, ReadInterrupted
from flywheel_datasets.formats import EVAL_FILE, TRAIN_FILE, VAL_FILE
from flywheel_datasets.icl import EXAMPLE_IDS, LEXICAL_SIMILARITY
from flywheel_datasets.records import Record
from flywheel_datasets.run_defaults import RunDefaults
from services.datasets.tests.factories import FakeEmbedder, FakeSource, record

pytestmark = pytest.mark.unit

UNTIL = datetime(2025, 2, 1, tzinfo=UTC)
TOOL_NAMES = ("get_order_status", "cancel_order", "track_shipment")


def _config(**overrides: object) -> RunConfig:
    request = RunRequested(
        workload_id="order-tools",
        client_id="acme",
        overrides=RunOverrides.model_validate(overrides),
    )
    return RunDefaults.load().resolve(request, UUID(int=7))


def _traffic(n: int) -> list[Record]:
    return [
        record(
            f"Question {i}: what about order ORD-{i:06d} placed {i % 17} days ago, ref {i * 7919 % 99991}?",
            tool=TOOL_NAMES[i % 3],
            conversation=f"conv-{i // 2}",
        )
        for i in range(n)
    ]


def _lines(path: Path) -> list[Record]:
    data = path.read_bytes()
    return [orjson.loads(line) for line in data.split(b"\n")] if data else []


def _contents(built: Built) -> dict[str, bytes]:
    groups = {"eval": built.eval_files, "icl": built.icl_files, "train": built.train_files}
    return {
        f"{kind}/{name}": path.read_bytes()
        for kind, files in groups.items()
        for name, path in files.items()
    }


async def _build(
    source: FakeSource,
    directory: Path,
    settings: BuildSettings | None = None,
    **overrides: object,
) -> Built:
    builder = DatasetBuilder(
        source, FakeEmbedder().embed, settings or BuildSettings(), inline_deduplication
    )
    return await builder.build(_config(**overrides), UNTIL, directory)


async def test_the_files_match_the_counts_and_the_statistics_add_up(tmp_path: Path) -> None:
    traffic = _traffic(300)
    traffic[10] = record(traffic[10]["request"]["messages"][-1]["content"], tool=None)
    traffic.insert(20, orjson.loads(orjson.dumps(traffic[30])))  # an exact duplicate
    built = await _build(FakeSource(traffic), tmp_path, eval_size=20)

    assert built.workload_type is WorkloadType.TOOL_CALLING
    counts, stats = built.counts, built.stats
    assert len(_lines(built.eval_files[EVAL_FILE])) == counts.eval == 20
    assert len(_lines(built.icl_files[EVAL_FILE])) == counts.icl == 20
    assert len(_lines(built.train_files[TRAIN_FILE])) == counts.train
    assert len(_lines(built.train_files[VAL_FILE])) == counts.val
    assert stats.selected == counts.eval + counts.train + counts.val
    assert stats.fetched == 301
    assert (stats.duplicates, stats.no_tool_calls) == (1, 1)
    # Conversations hold two records, so nearly every evaluation record leaves a sibling out.
    assert stats.leaked == stats.rules["same_conversation_as_eval"] >= 18
    assert stats.fetched == sum(stats.rules.values()) + stats.selected
    assert counts.val == pytest.approx(0.1 * (counts.train + counts.val), abs=2)
    assert built.stratified
    # The baseline describes the records the split was built from (leaked ones included).
    assert built.baseline is not None
    assert built.baseline.records == stats.selected + stats.leaked
    assert [(m.model, m.records) for m in built.baseline.models] == [("big", 299)]


async def test_the_icl_file_is_the_eval_file_with_examples(tmp_path: Path) -> None:
    built = await _build(FakeSource(_traffic(200)), tmp_path, eval_size=10)
    evaluation, icl = _lines(built.eval_files[EVAL_FILE]), _lines(built.icl_files[EVAL_FILE])
    for plain, injected in zip(evaluation, icl, strict=True):
        assert plain["response"] == injected["response"]
        system = injected["request"]["messages"][0]["content"]
        assert system.count("For example, if the conversation looks like this:") == 3
        assert system.endswith(plain["request"]["messages"][0]["content"])


async def test_reading_stops_once_the_limit_is_reached(tmp_path: Path) -> None:
    source = FakeSource(_traffic(1000), page_size=100)
    built = await _build(source, tmp_path, limit=250, eval_size=20)
    assert built.stats.fetched == 250
    assert source.pages_read == 4  # the read runs one page ahead of deduplication
    (query,) = source.queries
    assert (query.workload_id, query.client_id, query.until, query.since) == (
        "order-tools",
        "acme",
        UNTIL,
        None,
    )


async def test_a_time_window_bounds_the_query(tmp_path: Path) -> None:
    source = FakeSource(_traffic(100))
    builder = DatasetBuilder(
        source,
        FakeEmbedder().embed,
        BuildSettings(),
        inline_deduplication,
        window=timedelta(days=3),
    )
    await builder.build(_config(eval_size=20), UNTIL, tmp_path)
    assert source.queries[0].since == UNTIL - timedelta(days=3)


async def test_no_records_for_the_workload_says_so(tmp_path: Path) -> None:
    with pytest.raises(
        NotEnoughRecords, match="no records for workload 'order-tools' and client 'acme'"
    ):
        await _build(FakeSource([]), tmp_path)


async def test_too_few_usable_records_fail_with_the_numbers(tmp_path: Path) -> None:
    traffic = _traffic(40) + [record("Where is ORD-1?") for _ in range(30)]
    with pytest.raises(
        NotEnoughRecords, match=r"41 usable records out of 70 read .*duplicate 29.*at least 50"
    ) as caught:
        await _build(FakeSource(traffic), tmp_path)
    assert caught.value.stats is not None
    assert caught.value.stats.duplicates == 29


async def test_pii_is_scrubbed_from_every_file_when_enabled(tmp_path: Path) -> None:
    traffic = _traffic(200)
    for i, source in enumerate(traffic):
        source["request"]["messages"][-1]["content"] += f" Mail me at customer{i}@example.com"
    settings = BuildSettings(pii=PiiSettings(enabled=True))
    built = await _build(FakeSource(traffic), tmp_path, settings, eval_size=10)
    every_file = b"".join(_contents(built).values())
    assert b"@example.com" not in every_file
    assert b"[REDACTED:email]" in every_file
    assert built.stats.pii_redactions >= built.stats.selected


async def test_the_same_seed_rebuilds_the_same_files(tmp_path: Path) -> None:
    traffic = _traffic(200)
    first = await _build(FakeSource(traffic), tmp_path / "first", random_seed=5, eval_size=20)
    again = await _build(FakeSource(traffic), tmp_path / "again", random_seed=5, eval_size=20)
    assert _contents(first) == _contents(again)
    assert len(_contents(first)) == 4


@pytest.mark.parametrize(("min_limit", "expected"), [(251, []), (250, [(0.8, 2)])])
async def test_large_reads_deduplicate_with_the_given_factory(
    tmp_path: Path, min_limit: int, expected: list[tuple[float, int]]
) -> None:
    used: list[tuple[float, int]] = []

    def recording(
        near_threshold: float, streams: int
    ) -> AbstractAsyncContextManager[Deduplication]:
        used.append((near_threshold, streams))
        return inline_deduplication(near_threshold, streams)

    settings = BuildSettings(deduplication_process_min_limit=min_limit)
    builder = DatasetBuilder(FakeSource(_traffic(300)), FakeEmbedder().embed, settings, recording)
    built = await builder.build(_config(limit=250, eval_size=20), UNTIL, tmp_path)
    assert used == expected
    assert built.stats.selected > 0


async def test_under_the_defaults_examples_are_chosen_per_record_even_without_embeddings(
    tmp_path: Path,
) -> None:
    async def unavailable(texts: Sequence[str]) -> list[list[float]]:
        raise EmbeddingUnavailable("embeddings from model failed: connection refused")

    source = FakeSource(_traffic(400))
    builder = DatasetBuilder(source, unavailable, BuildSettings(), inline_deduplication)
    with structlog.testing.capture_logs() as logs:
        built = await builder.build(_config(), UNTIL, tmp_path)
    assert built.counts.eval == 100  # the default evaluation set
    assert built.icl_selection == LEXICAL_SIMILARITY
    (done,) = [entry for entry in logs if entry["event"] == "dataset.built"]
    assert done["icl_selection"] == LEXICAL_SIMILARITY
    assert "connection refused" in done["icl_fallback_reason"]
    doc_ids = {f"doc-{i}" for i in range(400)}
    shown = [tuple(r[EXAMPLE_IDS]) for r in _lines(built.icl_files[EVAL_FILE])]
    assert all(shown) and set().union(*shown) <= doc_ids
    assert len(set(shown)) > 1


async def test_a_read_interrupted_by_a_store_restart_starts_again_and_builds_the_same_files(
    tmp_path: Path,
) -> None:
    traffic = _traffic(300)
    steady = await _build(FakeSource(traffic), tmp_path / "steady", random_seed=5, eval_size=20)
    interrupted = FakeSource(traffic, interruptions=2)
    rebuilt = await _build(interrupted, tmp_path / "rebuilt", random_seed=5, eval_size=20)
    assert len(interrupted.queries) == 3
    assert _contents(rebuilt) == _contents(steady)


async def test_a_read_interrupted_every_time_gives_up_after_three_attempts(
    tmp_path: Path,
) -> None:
    source = FakeSource(_traffic(300), interruptions=3)
    with pytest.raises(ReadInterrupted, match="the point in time was lost"):
        await _build(source, tmp_path, eval_size=20)
    assert len(source.queries) == 3
