"""The collector: per-rule counts, the workload type, the two deduplication streams, the limit,
and reading page by page with deduplication one page behind."""

from collections.abc import AsyncIterator

import orjson
import pytest

from flywheel_contracts.run_config import WorkloadType
from flywheel_datasets.dedup_worker import inline_deduplication
from flywheel_datasets.records import Record
from flywheel_datasets.rules import Rule
from flywheel_datasets.selection import STREAMS, Collector, LoggedRecord, Selection, collect
from services.datasets.tests.factories import record

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]


async def _collect(
    records: list[Record], *, limit: int = 100, max_fetch: int = 1000, page_size: int = 1000
) -> tuple[Collector, Selection]:
    collector = Collector(
        limit=limit, max_fetch=max_fetch, max_tool_properties=8, parse_arguments=True
    )
    logged = [LoggedRecord(f"doc-{i}", r) for i, r in enumerate(records)]

    async def pages() -> AsyncIterator[list[LoggedRecord]]:
        for start in range(0, len(logged), page_size):
            yield logged[start : start + page_size]

    async with inline_deduplication(0.8, STREAMS) as deduplication:
        selection = await collect(pages(), collector, deduplication)
    return collector, selection


async def test_every_record_read_is_counted_once() -> None:
    broken = record("no messages")
    broken["request"]["messages"] = []
    records = [
        record("Where is ORD-1?"),
        record("Where is ORD-1?"),  # duplicate
        record("where is ord 1"),  # near duplicate
        record("Please cancel ORD-2 for me today", tool="cancel_order", arguments='{"x": '),
        record("What are your opening hours on Sundays?", tool=None),  # no tool call
        broken,
        record("Track my parcel for order ORD-3 please", tool="track_shipment"),
    ]
    _, selection = await _collect(records)
    assert selection.workload_type is WorkloadType.TOOL_CALLING
    assert selection.fetched == 7
    assert dict(selection.dropped) == {
        Rule.DUPLICATE: 1,
        Rule.NEAR_DUPLICATE: 1,
        Rule.UNPARSABLE_ARGUMENTS: 1,
        Rule.NO_TOOL_CALLS: 1,
        Rule.NO_MESSAGES: 1,
    }
    assert [c.doc_id for c in selection.candidates] == ["doc-0", "doc-6"]
    assert selection.fetched == sum(selection.dropped.values()) + len(selection.candidates)


async def test_a_workload_without_tool_calls_is_generic_and_keeps_answers() -> None:
    records = [
        record(f"Question number {i} about returns policy {i * 7}", tool=None) for i in range(5)
    ]
    _, selection = await _collect(records)
    assert selection.workload_type is WorkloadType.GENERIC
    assert len(selection.candidates) == 5
    assert Rule.NO_TOOL_CALLS not in selection.dropped


async def test_plain_answers_before_the_first_tool_call_are_dropped_in_the_end() -> None:
    records = [
        record("Tell me a joke about shipping", tool=None),
        record("Where is my order ORD-5?"),
        record("Tell me a joke about shipping", tool="get_order_status"),
    ]
    _, selection = await _collect(records)
    assert selection.workload_type is WorkloadType.TOOL_CALLING
    # The plain answer neither survives nor blocks the later tool-calling copy of its question.
    assert [c.doc_id for c in selection.candidates] == ["doc-1", "doc-2"]
    assert selection.dropped == {Rule.NO_TOOL_CALLS: 1}


async def test_reading_stops_at_the_limit() -> None:
    records = [record(f"Where is order ORD-{i:06d} from {i} days ago?") for i in range(50)]
    collector, selection = await _collect(records, limit=10)
    assert collector.done
    assert len(selection.candidates) == 10
    assert selection.fetched == 10
    assert [c.doc_id for c in selection.candidates] == [f"doc-{i}" for i in range(10)]


async def test_reading_stops_after_max_fetch_even_below_the_limit() -> None:
    records = [record("Where is ORD-1?") for _ in range(50)]
    collector, selection = await _collect(records, limit=10, max_fetch=20)
    assert collector.done
    assert selection.fetched == 20


async def test_a_candidate_gives_back_its_record_with_the_shared_tools() -> None:
    source = record()
    tools = source["request"]["tools"]
    _, selection = await _collect([source])
    (candidate,) = selection.candidates
    assert b'"tools"' not in candidate.body
    rebuilt = candidate.record()
    assert rebuilt["request"]["tools"] is tools
    assert orjson.loads(orjson.dumps(rebuilt)) == orjson.loads(orjson.dumps(source))


@pytest.mark.parametrize("page_size", [1, 2, 3, 7])
async def test_pages_of_any_size_select_the_same_records(page_size: int) -> None:
    # Plain answers first, then tool calls, duplicates across pages, the limit reached mid-page
    # while the next page is already checked: the counts must not depend on the paging.
    records = [record(f"Tell me a joke about parcel {i}", tool=None) for i in range(4)]
    records += [record(f"Where is order ORD-{i % 9:06d} from {i % 9} days ago?") for i in range(30)]
    records.insert(8, record("Tell me a joke about parcel 2", tool=None))
    _, whole = await _collect(records, limit=8)
    collector, paged = await _collect(records, limit=8, page_size=page_size)
    assert collector.done
    assert [c.doc_id for c in paged.candidates] == [c.doc_id for c in whole.candidates]
    assert (paged.fetched, paged.dropped, paged.workload_type) == (
        whole.fetched,
        whole.dropped,
        whole.workload_type,
    )
    assert len(whole.candidates) == 8
    assert whole.dropped[Rule.NO_TOOL_CALLS] == 5
    assert whole.fetched == sum(whole.dropped.values()) + len(whole.candidates)


async def test_the_baseline_describes_the_selected_records_and_the_volume_every_record_read() -> (
    None
):
    def logged(user: str, model: str, at: str, tool: str | None = "get_order_status") -> Record:
        source = record(user, tool=tool)
        source["response"]["model"] = model
        source["response"]["usage"] = {"prompt_tokens": 10, "completion_tokens": 2}
        source["timestamp"] = at
        return source

    records = [
        logged("Where is my order ORD-7?", "tuned", "2025-01-09T09:00:00.000Z"),
        logged("Where is my order ORD-7?", "tuned", "2025-01-08T09:00:00.000Z"),  # duplicate
        logged("Any discount codes this week?", "small", "2025-01-07T09:00:00.000Z", tool=None),
        logged("Cancel order ORD-9 please", "big", "2025-01-06T21:00:00.000Z"),
        logged("Track the parcel of ORD-11", "big", "2025-01-06T09:00:00.000Z"),
    ]
    records[4]["request"]["messages"] = []  # broken: read, not selected
    _, selection = await _collect(records)
    baseline = selection.baseline
    assert [c.doc_id for c in selection.candidates] == ["doc-0", "doc-3"]
    # The plain answer went to the other stream, the duplicate and the broken record nowhere.
    assert [(m.model, m.records) for m in baseline.models] == [("big", 1), ("tuned", 1)]
    assert (baseline.records, baseline.records_with_usage) == (2, 2)
    assert baseline.requests_per_day == pytest.approx(5 / 3)  # all five read, over three days
