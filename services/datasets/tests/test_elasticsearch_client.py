"""The log store client when Elasticsearch cannot be reached: retries, then the typed failure."""

import contextlib
import socket
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from elasticsearch import NotFoundError, RequestError
from pydantic import SecretStr

from flywheel_datasets.clients.elasticsearch import ElasticsearchRecords
from flywheel_datasets.config import ElasticsearchSettings
from flywheel_datasets.errors import LogStoreUnavailable, ReadInterrupted
from flywheel_datasets.ports import RecordQuery
from flywheel_datasets.selection import LoggedRecord
from services.datasets.tests.factories import TOOLS, record

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
    """The point-in-time calls of a 7.12+ cluster over stored documents (newest first): a
    search leaves `request.tools` out of the sources, a search by ids runs the fingerprint
    script (unless scripts are refused), `get` and `mget` give only the tools."""

    def __init__(
        self,
        documents: list[dict[str, Any]],
        *,
        scripts: bool = True,
        restart_after_searches: int | None = None,
    ) -> None:
        self.documents = documents
        self.scripts = scripts
        self.restart_after_searches = restart_after_searches
        self.searches: list[dict[str, Any]] = []
        self.scripted: list[list[str]] = []
        self.gets: list[str] = []
        self.mgets: list[list[str]] = []
        self.closed: list[str] = []

    async def open_point_in_time(self, **_: Any) -> dict[str, Any]:
        return {"id": "pit-1"}

    async def search(self, **kwargs: Any) -> dict[str, Any]:
        if "script_fields" in kwargs:
            return self._scripted(kwargs["query"]["ids"]["values"])
        assert kwargs["_source_excludes"] == ["request.tools"]
        if len(self.searches) == self.restart_after_searches:
            raise NotFoundError(404, "search_context_missing_exception", {"pit": "gone"})
        self.searches.append(kwargs)
        start = kwargs.get("search_after", [-1])[0] + 1
        chunk = self.documents[start : start + kwargs["size"]]
        hits = []
        for i, document in enumerate(chunk, start):
            source = orjson.loads(orjson.dumps(document))
            source["request"].pop("tools", None)
            hits.append({"_id": f"doc-{i}", "_source": source, "sort": [i]})
        return {"pit_id": "pit-2", "hits": {"hits": hits}}

    def _scripted(self, doc_ids: list[str]) -> dict[str, Any]:
        self.scripted.append(doc_ids)
        if not self.scripts:
            reason = {"error": {"root_cause": [{"reason": "cannot execute [inline] scripts"}]}}
            raise RequestError(400, "illegal_argument_exception", reason)
        hits = []
        for doc_id in doc_ids:
            tools = self._tools_of(doc_id).get("request", {}).get("tools")
            fingerprint = f"{len(orjson.dumps(tools))}:{len(tools)}" if tools else None
            hits.append({"_id": doc_id, "fields": {"tools_fingerprint": [fingerprint]}})
        return {"hits": {"hits": hits}}

    async def get(self, **kwargs: Any) -> dict[str, Any]:
        self.gets.append(kwargs["id"])
        return {"_id": kwargs["id"], "_source": self._tools_of(kwargs["id"])}

    async def mget(self, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        assert kwargs["_source_includes"] == ["request.tools"]
        self.mgets.append(body["ids"])
        return {"docs": [{"_id": i, "_source": self._tools_of(i)} for i in body["ids"]]}

    def _tools_of(self, doc_id: str) -> dict[str, Any]:
        request = self.documents[int(doc_id.removeprefix("doc-"))]["request"]
        tools = {"request": {"tools": request["tools"]}} if "tools" in request else {}
        return dict(orjson.loads(orjson.dumps(tools)))  # fresh objects, as off the wire

    async def close_point_in_time(self, body: dict[str, Any]) -> None:
        self.closed.append(body["id"])

    async def close(self) -> None:
        return None


async def test_a_point_in_time_is_paged_and_fingerprinted_tools_fetched_once() -> None:
    logged = [record(f"Where is ORD-{i}?") for i in range(25)]
    cluster = FakePitCluster([{**source, "tools_fingerprint": "fp-a"} for source in logged])
    pages = await _pages(cluster, page_size=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [search.get("search_after") for search in cluster.searches] == [None, [9], [19], [24]]
    assert all(search["pit"]["id"] in ("pit-1", "pit-2") for search in cluster.searches)
    assert (cluster.gets, cluster.mgets) == (["doc-0"], [])
    assert [logged.source for page in pages for logged in page] == logged
    shared = {id(logged.source["request"]["tools"]) for page in pages for logged in page}
    assert len(shared) == 1
    assert cluster.closed == ["pit-2"]


def _mixed() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Twelve records as logged, and as stored: two tool lists, every third record without
    tools, only the tenth stored with ingest's fingerprint."""
    logged = [
        record(f"Where is ORD-{i}?", tool=None if i % 3 == 2 else "get_order_status")
        for i in range(12)
    ]
    for source in logged[1::3]:
        source["request"]["tools"] = TOOLS[1:]
    stored = [dict(source) for source in logged]
    stored[9]["tools_fingerprint"] = "fp-a"
    return logged, stored


@pytest.mark.parametrize("scripts", [True, False])
async def test_records_stored_without_a_fingerprint_get_theirs_from_the_cluster(
    scripts: bool,
) -> None:
    logged, stored = _mixed()
    cluster = FakePitCluster(stored, scripts=scripts)
    pages = await _pages(cluster, page_size=10)
    read = [logged.source for page in pages for logged in page]
    assert read == logged
    unmarked = [[f"doc-{i}" for i in range(10) if i != 9], ["doc-10", "doc-11"]]
    if scripts:
        assert (cluster.scripted, cluster.mgets) == (unmarked, [])
        assert cluster.gets == ["doc-0", "doc-1", "doc-9"]
    else:
        assert (cluster.scripted, cluster.mgets) == (unmarked[:1], unmarked)
        assert cluster.gets == ["doc-9"]
    tools = [source["request"].get("tools") for source in read]
    assert tools[0] is tools[3] is tools[6] and tools[1] is tools[4] is tools[10]
    assert tools[0] is not tools[9] and tools[0] == tools[9]
    assert not any("tools" in source["request"] for source in read[2::3])


async def _pages(cluster: FakePitCluster, page_size: int) -> list[list[LoggedRecord]]:
    records = ElasticsearchRecords(ElasticsearchSettings(page_size=page_size))
    records._client = cluster  # type: ignore[assignment]
    query = RecordQuery(workload_id="w", client_id="c", until=datetime.now(UTC))
    return [page async for page in records.pages(query)]


async def test_stopping_early_releases_the_point_in_time() -> None:
    cluster = FakePitCluster([record(f"Where is ORD-{i}?") for i in range(50)])
    records = ElasticsearchRecords(ElasticsearchSettings(page_size=10))
    records._client = cluster  # type: ignore[assignment]
    query = RecordQuery(workload_id="w", client_id="c", until=datetime.now(UTC))
    async with contextlib.aclosing(records.pages(query)) as pages:
        async for _ in pages:
            break
    assert cluster.closed


async def test_a_point_in_time_lost_mid_read_interrupts_the_read_to_be_started_again() -> None:
    cluster = FakePitCluster(
        [record(f"Where is ORD-{i}?") for i in range(30)], restart_after_searches=2
    )
    with pytest.raises(ReadInterrupted, match="the point in time was lost"):
        await _pages(cluster, page_size=10)
    assert len(cluster.searches) == 2  # two pages read, the third search found it gone
