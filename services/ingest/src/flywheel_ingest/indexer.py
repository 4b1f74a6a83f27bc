"""The log store: Elasticsearch, written to with bulk `create` requests under content ids.

`create` (not `index`) makes a redelivered record a 409 "already exists", counted as a
duplicate and otherwise treated as success. The index template is put (and the index created)
before the first bulk request, and again after a failure, so no record ever lands in an index
Elasticsearch mapped on its own.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from elasticsearch import AsyncElasticsearch, TransportError
from elasticsearch import ConnectionError as EsConnectionError

from flywheel_ingest.config import ElasticsearchSettings
from flywheel_ingest.documents import TOOLS_FINGERPRINT, Document
from flywheel_ingest.errors import StoreUnavailable
from flywheel_ingest.ports import IndexResult

TEMPLATE_VERSION = 2
_CONFLICT = 409
_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500
_ITEM_FIELDS = "errors,items.*.status,items.*.error.type,items.*.error.reason"

_log = structlog.get_logger("flywheel.ingest.indexer")


def index_template(settings: ElasticsearchSettings) -> dict[str, Any]:
    """Ids and the time are searchable; request and response are kept in `_source` only
    (`enabled: false`: neither parsed into fields nor indexed), and so is anything else a
    record carries (`dynamic: false`), so no record can ever cause a mapping conflict.
    `tools_fingerprint` is read back from `_source` only: neither indexed nor a doc value (an
    index created before it was mapped holds it the same way, as an unmapped field)."""
    return {
        "index_patterns": [settings.index],
        "priority": 200,
        "_meta": {"managed_by": "flywheel-ingest", "version": TEMPLATE_VERSION},
        "template": {
            "settings": {
                "number_of_shards": settings.shards,
                "number_of_replicas": settings.replicas,
                "refresh_interval": settings.refresh_interval,
            },
            "mappings": {
                "dynamic": False,
                "properties": {
                    "workload_id": {"type": "keyword"},
                    "client_id": {"type": "keyword"},
                    "timestamp": {"type": "date", "format": "strict_date_optional_time"},
                    "request": {"type": "object", "enabled": False},
                    "response": {"type": "object", "enabled": False},
                    TOOLS_FINGERPRINT: {"type": "keyword", "index": False, "doc_values": False},
                },
            },
        },
    }


def bulk_body(documents: Sequence[Document]) -> bytes:
    """NDJSON `create` actions; the ids are hex, so no escaping is needed."""
    parts: list[bytes] = []
    for doc in documents:
        parts.append(b'{"create":{"_id":"%s"}}\n' % doc.id.encode())
        parts.append(doc.body)
        parts.append(b"\n")
    return b"".join(parts)


class ElasticsearchStore:
    def __init__(self, settings: ElasticsearchSettings) -> None:
        self._settings = settings
        self._client = AsyncElasticsearch(
            **settings.client_kwargs(),  # URL, credentials and TLS trust (the kit's)
            request_timeout=settings.request_timeout_s,
            max_retries=0,  # the service retries with backoff, and pauses consumption meanwhile
        )
        self._ready = False
        self._preparing = asyncio.Lock()  # concurrent batches prepare the index once

    async def ensure_index(self) -> None:
        """Put the template and create the index if missing; StoreUnavailable if not possible."""
        try:
            await self._client.indices.put_index_template(
                name=self._settings.template_name, body=index_template(self._settings)
            )
            if not await self._client.indices.exists(index=self._settings.index):
                await self._client.indices.create(index=self._settings.index, ignore=400)
        except TransportError as exc:
            raise StoreUnavailable(f"cannot prepare index {self._settings.index}: {exc}") from exc
        self._ready = True
        _log.info("index.ready", index=self._settings.index, template=self._settings.template_name)

    async def index(self, documents: Sequence[Document]) -> IndexResult:
        if not documents:
            return IndexResult()
        if not self._ready:
            async with self._preparing:
                if not self._ready:
                    await self.ensure_index()
        try:
            response = await self._client.bulk(
                body=bulk_body(documents), index=self._settings.index, filter_path=_ITEM_FIELDS
            )
        except EsConnectionError as exc:
            self._ready = False  # the cluster may come back empty
            raise StoreUnavailable(f"Elasticsearch unreachable: {exc}") from exc
        except TransportError as exc:
            # A whole bulk request refused (overloaded, read-only, ...): never drop it.
            raise StoreUnavailable(f"bulk request refused: {exc}") from exc
        if not response.get("errors"):
            return IndexResult(created=list(documents))
        return sort_items(documents, response["items"])

    async def ping(self) -> None:
        await self._client.info()

    async def close(self) -> None:
        await self._client.close()


def sort_items(documents: Sequence[Document], items: list[dict[str, Any]]) -> IndexResult:
    result = IndexResult()
    for doc, item in zip(documents, items, strict=True):
        (outcome,) = item.values()
        status = outcome["status"]
        if status < 300:
            result.created.append(doc)
        elif status == _CONFLICT:
            result.duplicates.append(doc)
        elif status == _TOO_MANY_REQUESTS or status >= _SERVER_ERROR:
            result.retry.append(doc)
        else:
            error = outcome.get("error", {})
            result.refused.append((doc, f"{error.get('type')}: {error.get('reason')}"))
    return result
