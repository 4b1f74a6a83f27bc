"""The Elasticsearch side that needs no server: bulk body, item outcomes, the template."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flywheel_ingest.config import ElasticsearchSettings
from flywheel_ingest.documents import Document, RawLine
from flywheel_ingest.indexer import bulk_body, index_template, sort_items

pytestmark = pytest.mark.unit


def _doc(n: int) -> Document:
    body = orjson.dumps({"n": n})
    return Document(f"{n:064x}", body, "w", "c", RawLine(body, "logs.raw", 0, n))


def test_bulk_body_is_ndjson_create_actions_with_the_ids() -> None:
    body = bulk_body([_doc(1), _doc(2)])
    lines = body.split(b"\n")
    assert lines[-1] == b""  # the body ends with a newline
    assert [orjson.loads(line) for line in lines[:-1]] == [
        {"create": {"_id": f"{1:064x}"}},
        {"n": 1},
        {"create": {"_id": f"{2:064x}"}},
        {"n": 2},
    ]


def test_item_outcomes_are_sorted_by_status() -> None:
    docs = [_doc(n) for n in range(5)]
    items: list[dict[str, Any]] = [
        {"create": {"status": 201}},
        {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
        {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
        {"create": {"status": 503, "error": {"type": "unavailable_shards_exception"}}},
        {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "x"}}},
    ]
    result = sort_items(docs, items)
    assert result.created == docs[:1]
    assert result.duplicates == docs[1:2]
    assert result.retry == docs[2:4]
    assert result.refused == [(docs[4], "mapper_parsing_exception: x")]


def test_template_keeps_request_and_response_unindexed_and_is_configurable() -> None:
    settings = ElasticsearchSettings(index="logs-a", replicas=2, shards=3, refresh_interval="5s")
    template = index_template(settings)
    assert template["index_patterns"] == ["logs-a"]
    assert template["template"]["settings"] == {
        "number_of_shards": 3,
        "number_of_replicas": 2,
        "refresh_interval": "5s",
    }
    mappings = template["template"]["mappings"]
    assert mappings["dynamic"] is False
    assert mappings["properties"]["workload_id"] == {"type": "keyword"}
    assert mappings["properties"]["timestamp"]["type"] == "date"
    assert mappings["properties"]["request"] == {"type": "object", "enabled": False}
    assert mappings["properties"]["response"] == {"type": "object", "enabled": False}
    assert mappings["properties"]["tools_fingerprint"]["type"] == "keyword"
    assert ElasticsearchSettings().replicas == 0
