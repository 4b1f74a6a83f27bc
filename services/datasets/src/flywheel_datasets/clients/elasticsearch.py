"""The logged records, read from Elasticsearch newest first in constant memory.

A point in time with `search_after` when the cluster has it (7.12+ with the default
distribution); otherwise a sorted scroll, which gives the same consistent snapshot (the local
stack's 7.10 OSS build has no point-in-time API). One page is fetched ahead while the previous
one is processed.

Tool schemas are most of a record's bytes (about 6 KB of 7.5 KB for a twelve-tool agent) and
the same for every record of a workload. So sources come back without `request.tools`, and
each distinct list is fetched once, by the `tools_fingerprint` ingest stores with every record
that has one, and shared by every record that logged it. For the hits of a page without it
(indexed before ingest stored it, or without tools) one more search computes a fingerprint in
the cluster (the content hash of the parsed list and its size: a script, which costs the
cluster a parse of each source); a cluster that refuses scripts gives their lists by id, and
they are interned on this side.
"""

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
import structlog
from elasticsearch import (
    AsyncElasticsearch,
    ConnectionTimeout,
    NotFoundError,
    RequestError,
    TransportError,
)
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch.serializer import JSONSerializer

from flywheel_datasets.config import ElasticsearchSettings
from flywheel_datasets.errors import LogStoreUnavailable, ReadInterrupted
from flywheel_datasets.ports import RecordQuery
from flywheel_datasets.selection import LoggedRecord

_TOOLS = "request.tools"
_FINGERPRINT = "tools_fingerprint"  # ingest's: a content hash of request.tools, when a list
_FINGERPRINT_SCRIPT = (
    "def request = params._source.request;"
    "if (!(request instanceof Map)) { return null; }"
    "def tools = request.tools;"
    "return tools instanceof List ? tools.hashCode() + ':' + tools.size() : null;"
)
_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
_HIT_FIELDS = "hits.hits._id,hits.hits._source,hits.hits.sort"

_log = structlog.get_logger("flywheel.datasets.elasticsearch")

Response = dict[str, Any]


class _OrjsonSerializer(JSONSerializer):
    """Pages are megabytes of JSON: orjson parses them several times faster."""

    def loads(self, s: str | bytes) -> Any:
        return orjson.loads(s)


class ElasticsearchRecords:
    def __init__(
        self,
        settings: ElasticsearchSettings,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self._client = AsyncElasticsearch(
            **settings.client_kwargs(),  # URL, credentials and TLS trust (the kit's)
            serializer=_OrjsonSerializer(),
            request_timeout=settings.request_timeout_s,
            max_retries=0,  # retried here, with backoff, and reported as LogStoreUnavailable
        )
        self._scripts = True

    async def ping(self) -> None:
        await self._client.info()

    async def close(self) -> None:
        await self._client.close()

    async def pages(self, query: RecordQuery) -> AsyncGenerator[list[LoggedRecord], None]:
        tools: dict[str, Any] = {}
        try:
            pit = await self._call(
                self._client.open_point_in_time,
                index=self._settings.index,
                keep_alive=self._settings.keep_alive,
            )
        except NotFoundError:
            return  # nothing was ever indexed
        except RequestError:
            responses = self._scroll(query)
        else:
            responses = self._point_in_time(query, pit["id"])
        async with contextlib.aclosing(_prefetched(responses)) as batches:
            async for hits in batches:
                yield await self._records(hits, tools)

    # Cursors.

    async def _point_in_time(
        self, query: RecordQuery, pit_id: str
    ) -> AsyncGenerator[Response, None]:
        after: list[Any] | None = None
        try:
            while True:
                extra = {"search_after": after} if after is not None else {}
                try:
                    response = await self._search(
                        query,
                        pit={"id": pit_id, "keep_alive": self._settings.keep_alive},
                        sort=[{"timestamp": "desc"}, {"_shard_doc": "desc"}],
                        track_total_hits=False,
                        filter_path=f"pit_id,{_HIT_FIELDS}",
                        **extra,
                    )
                except NotFoundError as exc:
                    # A restarted node forgets its points in time (and one may expire): the
                    # `_shard_doc` tie-breakers of this one mean nothing to a new one, so the
                    # read starts again, as a lost scroll does.
                    raise ReadInterrupted(f"the point in time was lost: {exc}") from exc
                hits = response.get("hits", {}).get("hits", [])
                if not hits:
                    return
                pit_id = response.get("pit_id", pit_id)
                after = hits[-1]["sort"]
                yield response
        finally:
            await self._release(self._client.close_point_in_time, body={"id": pit_id})

    async def _scroll(self, query: RecordQuery) -> AsyncGenerator[Response, None]:
        response = await self._search(
            query,
            index=self._settings.index,
            ignore_unavailable=True,  # no index yet: nothing was ever logged, so no records
            scroll=self._settings.keep_alive,
            sort=[{"timestamp": "desc"}],
            filter_path=f"_scroll_id,{_HIT_FIELDS}",
        )
        scroll_id = response.get("_scroll_id")
        try:
            while response.get("hits", {}).get("hits"):
                yield response
                try:
                    response = await self._call(
                        self._client.scroll,
                        scroll_id=scroll_id,
                        scroll=self._settings.keep_alive,
                        filter_path=f"_scroll_id,{_HIT_FIELDS}",
                    )
                except NotFoundError as exc:
                    raise ReadInterrupted(f"the scroll was lost: {exc}") from exc
                scroll_id = response.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                await self._release(self._client.clear_scroll, scroll_id=scroll_id)

    async def _search(self, query: RecordQuery, **kwargs: Any) -> Response:
        response: Response = await self._call(
            self._client.search,
            query=_query(query),
            size=self._settings.page_size,
            _source_excludes=[_TOOLS],
            **kwargs,
        )
        return response

    # Tool schemas.

    async def _records(self, hits: list[Response], tools: dict[str, Any]) -> list[LoggedRecord]:
        """The page's records with their tools attached: one object per distinct list."""
        unmarked = [hit["_id"] for hit in hits if _FINGERPRINT not in hit["_source"]]
        keys = await self._keys_of(unmarked, tools) if unmarked else {}
        records = []
        for hit in hits:
            source = hit["_source"]
            # Ingest's field is not part of the record as logged.
            key = source.pop(_FINGERPRINT, None) or keys.get(hit["_id"])
            if key is not None:
                if key not in tools:
                    tools[key] = await self._tools_of(hit["_id"])
                source["request"]["tools"] = tools[key]
            records.append(LoggedRecord(hit["_id"], source))
        return records

    async def _keys_of(self, doc_ids: list[str], tools: dict[str, Any]) -> dict[str, str]:
        """Fingerprints, by document id, of records stored without one; none for a record
        without a tools list."""
        if self._scripts:
            try:
                response = await self._call(
                    self._client.search,
                    index=self._settings.index,
                    query={"ids": {"values": doc_ids}},
                    size=len(doc_ids),
                    _source=False,
                    script_fields={_FINGERPRINT: {"script": {"source": _FINGERPRINT_SCRIPT}}},
                    filter_path="hits.hits._id,hits.hits.fields",
                )
            except RequestError as exc:
                if "script" not in str(exc):
                    raise
                _log.warning("elasticsearch.scripts_refused", error=str(exc)[:300])
                self._scripts = False
            else:
                hits = response.get("hits", {}).get("hits", [])
                fingerprints = {hit["_id"]: hit.get("fields", {}).get(_FINGERPRINT) for hit in hits}
                # A record without a tools list comes back with [null].
                return {doc_id: str(fp[0]) for doc_id, fp in fingerprints.items() if fp and fp[0]}
        return await self._keys_by_content(doc_ids, tools)

    async def _keys_by_content(self, doc_ids: list[str], tools: dict[str, Any]) -> dict[str, str]:
        """The lists themselves, fetched by id, keyed by their content hash and interned (128
        hex characters: never equal to ingest's 32 or to the script's `hash:size`)."""
        response = await self._call(
            self._client.mget,
            body={"ids": doc_ids},
            index=self._settings.index,
            _source_includes=[_TOOLS],
        )
        keys = {}
        for document in response["docs"]:
            request = document.get("_source", {}).get("request")
            listed = request.get("tools") if isinstance(request, dict) else None
            if isinstance(listed, list):
                key = hashlib.blake2b(orjson.dumps(listed, option=orjson.OPT_SORT_KEYS)).hexdigest()
                tools.setdefault(key, listed)
                keys[document["_id"]] = key
        return keys

    async def _tools_of(self, doc_id: str) -> Any:
        document = await self._call(
            self._client.get, index=self._settings.index, id=doc_id, _source_includes=[_TOOLS]
        )
        return document.get("_source", {}).get("request", {}).get("tools")

    # Calls.

    async def _call(self, method: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        delay = self._settings.retry_backoff_s
        for attempt in range(1, self._settings.retry_attempts + 1):
            try:
                return await method(**kwargs)
            except (EsConnectionError, ConnectionTimeout) as exc:
                error: Exception = exc
            except TransportError as exc:
                if exc.status_code not in _RETRYABLE_STATUS:
                    raise
                error = exc
            if attempt == self._settings.retry_attempts:
                raise LogStoreUnavailable(
                    f"Elasticsearch (index {self._settings.index}) did not answer after "
                    f"{attempt} attempts: {error}"
                ) from error
            _log.warning("elasticsearch.retrying", attempt=attempt, delay_s=delay, error=str(error))
            await self._sleep(delay)
            delay = min(delay * 2, self._settings.retry_backoff_max_s)
        raise AssertionError("unreachable")

    async def _release(self, method: Callable[..., Awaitable[Any]], **kwargs: Any) -> None:
        """Free a cursor early; the keep-alive frees it anyway, so failures only get logged."""
        try:
            await method(**kwargs)
        except Exception as exc:
            _log.info("elasticsearch.release_failed", error=str(exc)[:300])


def _query(query: RecordQuery) -> dict[str, Any]:
    window: dict[str, str] = {"lte": _iso(query.until)}
    if query.since is not None:
        window["gte"] = _iso(query.since)
    return {
        "bool": {
            "filter": [
                {"term": {"workload_id": query.workload_id}},
                {"term": {"client_id": query.client_id}},
                {"range": {"timestamp": window}},
            ]
        }
    }


def _iso(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _prefetched(
    responses: AsyncGenerator[Response, None],
) -> AsyncGenerator[list[Response], None]:
    """The hits of each response, with the next response already requested; closing it closes
    `responses` (releasing the cursor)."""
    pending = asyncio.ensure_future(anext(responses, None))
    try:
        while (response := await pending) is not None:
            pending = asyncio.ensure_future(anext(responses, None))
            yield response["hits"]["hits"]
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await responses.aclose()
