"""The collector: per-rule counts, the workload type, the two deduplication streams, the limit."""

import orjson
import pytest

from flywheel_contracts.run_config import WorkloadType
from flywheel_datasets.records import Record
from flywheel_datasets.rules import Rule
from flywheel_datasets.selection import Collector, LoggedRecord
from services.datasets.tests.factories import record

pytestmark = pytest.mark.unit


def _collect(records: list[Record], *, limit: int = 100, max_fetch: int = 1000) -> Collector:
    collector = Collector(
        limit=limit,
        max_fetch=max_fetch,
        near_threshold=0.8,
        max_tool_properties=8,
        parse_arguments=True,
    )
    page = [LoggedRecord(f"doc-{i}", r) for i, r in enumerate(records)]
    collector.add(page)
    return collector


def test_every_record_read_is_counted_once() -> None:
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
    selection = _collect(records).selection()
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


def test_a_workload_without_tool_calls_is_generic_and_keeps_answers() -> None:
    records = [
        record(f"Question number {i} about returns policy {i * 7}", tool=None) for i in range(5)
    ]
    selection = _collect(records).selection()
    assert selection.workload_type is WorkloadType.GENERIC
    assert len(selection.candidates) == 5
    assert Rule.NO_TOOL_CALLS not in selection.dropped


def test_plain_answers_before_the_first_tool_call_are_dropped_in_the_end() -> None:
    records = [
        record("Tell me a joke about shipping", tool=None),
        record("Where is my order ORD-5?"),
        record("Tell me a joke about shipping", tool="get_order_status"),
    ]
    selection = _collect(records).selection()
    assert selection.workload_type is WorkloadType.TOOL_CALLING
    # The plain answer neither survives nor blocks the later tool-calling copy of its question.
    assert [c.doc_id for c in selection.candidates] == ["doc-1", "doc-2"]
    assert selection.dropped == {Rule.NO_TOOL_CALLS: 1}


def test_reading_stops_at_the_limit() -> None:
    records = [record(f"Where is order ORD-{i:06d} from {i} days ago?") for i in range(50)]
    collector = _collect(records, limit=10)
    assert collector.done
    selection = collector.selection()
    assert len(selection.candidates) == 10
    assert selection.fetched == 10
    assert [c.doc_id for c in selection.candidates] == [f"doc-{i}" for i in range(10)]


def test_reading_stops_after_max_fetch_even_below_the_limit() -> None:
    records = [record("Where is ORD-1?") for _ in range(50)]
    collector = _collect(records, limit=10, max_fetch=20)
    assert collector.done
    assert collector.selection().fetched == 20


def test_a_candidate_gives_back_its_record_with_the_shared_tools() -> None:
    source = record()
    tools = source["request"]["tools"]
    selection = _collect([source]).selection()
    (candidate,) = selection.candidates
    assert b'"tools"' not in candidate.body
    rebuilt = candidate.record()
    assert rebuilt["request"]["tools"] is tools
    assert orjson.loads(orjson.dumps(rebuilt)) == orjson.loads(orjson.dumps(source))
