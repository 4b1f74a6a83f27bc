"""The log store client when Elasticsearch cannot be reached: retries, then the typed failure."""

import contextlib
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from flywheel_datasets.clients.elasticsearch import ElasticsearchRecords
from flywheel_datasets.config import ElasticsearchSettings
from flywheel_datasets.errors import LogStoreUnavailable
from flywheel_datasets.ports import RecordQuery
from services.datasets.tests.factories import record

pytestmark = pytest.mark.unit


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens once the probe is closed


async def test_an_unreachable_log_store_is_retried_then_reported() -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    settings = ElasticsearchSettings(
        url=SecretStr(f"http://127.0.0.1:{_closed_port()}"),
        retry_attempts=4,
        retry_backoff_s=0.5,
        retry_backoff_max_s=1.5,
    )
    records = ElasticsearchRecords(settings, sleep=sleep)
    query = RecordQuery(workload_id="w", client_id="c", until=datetime.now(UTC))
    try:
        with pytest.raises(LogStoreUnavailable, match="did not answer after 4 attempts"):
            async for _ in records.pages(query):
                pass
    finally:
        await records.close()
    assert delays == [0.5, 1.0, 1.5]


class FakePitCluster:
    """Answers the point-in-time calls of a 7.12+ cluster from a list of sources (newest
    first); tools come back only through `get`, as with the fingerprint script."""

    def __init__(self, sources: list[dict[str, Any]], tools: list[Any]) -> None:
        self.sources = sources
        self.tools = tools
        self.searches: list[dict[str, Any]] = []
        self.gets: list[str] = []
        self.closed: list[str] = []

    async def open_point_in_time(self, **_: Any) -> dict[str, Any]:
        return {"id": "pit-1"}

    async def search(self, **kwargs: Any) -> dict[str, Any]:
        self.searches.append(kwargs)
        start = kwargs.get("search_after", [-1])[0] + 1
        chunk = self.sources[start : start + kwargs["size"]]
        hits = [
            {
                "_id": f"doc-{start + i}",
                "_source": source,
                "sort": [start + i],
                "fields": {"tools_fp": ["h:3"]},
            }
            for i, source in enumerate(chunk)
        ]
        return {"pit_id": "pit-2", "hits": {"hits": hits}}

    async def get(self, **kwargs: Any) -> dict[str, Any]:
        self.gets.append(kwargs["id"])
        return {"_source": {"request": {"tools": self.tools}}}

    async def close_point_in_time(self, body: dict[str, Any]) -> None:
        self.closed.append(body["id"])

    async def close(self) -> None:
        return None


async def test_a_point_in_time_is_paged_with_search_after_and_tools_fetched_once() -> None:
    sources = [record(f"Where is ORD-{i}?") for i in range(25)]
    tools = sources[0]["request"]["tools"]
    for source in sources:
        del source["request"]["tools"]
    cluster = FakePitCluster(sources, tools)
    records = ElasticsearchRecords(ElasticsearchSettings(page_size=10))
    records._client = cluster  # type: ignore[assignment]
    query = RecordQuery(workload_id="w", client_id="c", until=datetime.now(UTC))
    pages = [page async for page in records.pages(query)]
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [search.get("search_after") for search in cluster.searches] == [None, [9], [19], [24]]
    assert all(search["pit"]["id"] in ("pit-1", "pit-2") for search in cluster.searches)
    assert cluster.gets == ["doc-0"]
    shared = {id(logged.source["request"]["tools"]) for page in pages for logged in page}
    assert len(shared) == 1
    assert pages[0][0].source["request"]["tools"] == tools
    assert cluster.closed == ["pit-2"]


async def test_stopping_early_releases_the_point_in_time() -> None:
    cluster = FakePitCluster([record(f"Where is ORD-{i}?") for i in range(50)], [])
    records = ElasticsearchRecords(ElasticsearchSettings(page_size=10))
    records._client = cluster  # type: ignore[assignment]
    query = RecordQuery(workload_id="w", client_id="c", until=datetime.now(UTC))
    async with contextlib.aclosing(records.pages(query)) as pages:
        async for _ in pages:
            break
    assert cluster.closed
