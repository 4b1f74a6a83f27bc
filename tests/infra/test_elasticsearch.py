"""The local Elasticsearch really indexes and searches, through the async Python client."""

from __future__ import annotations

import uuid

import pytest
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

pytestmark = pytest.mark.integration


async def test_bulk_index_then_search(elasticsearch_url: str) -> None:
    index = f"test-infra-{uuid.uuid4().hex[:8]}"
    client = AsyncElasticsearch(elasticsearch_url)
    try:
        await client.indices.create(index=index, settings={"number_of_replicas": 0})
        actions = (
            {
                "_index": index,
                "_id": str(i),
                "workload_id": "router" if i % 4 == 0 else "chat",
                "n": i,
            }
            for i in range(2_000)
        )
        indexed, errors = await async_bulk(client, actions, chunk_size=500, refresh="wait_for")

        found = await client.search(
            index=index,
            query={"term": {"workload_id.keyword": "router"}},
            size=0,
            track_total_hits=True,
        )
        one = await client.get(index=index, id="42")
    finally:
        await client.indices.delete(index=index, ignore_unavailable=True)
        await client.close()

    assert (indexed, errors) == (2_000, [])
    assert found["hits"]["total"]["value"] == 500
    assert one["_source"]["n"] == 42
