"""The local Mongo-protocol database does what the services rely on, through PyMongo async."""

from __future__ import annotations

import uuid

import pytest
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

pytestmark = pytest.mark.integration


async def test_crud_unique_index_and_find_one_and_update(mongo_url: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    collection = client["flywheel_test"][f"infra_{uuid.uuid4().hex[:8]}"]
    try:
        await collection.create_index([("consumer", 1), ("event_id", 1)], unique=True)
        await collection.insert_one({"consumer": "ingest", "event_id": "e1", "attempts": 0})
        with pytest.raises(DuplicateKeyError):
            await collection.insert_one({"consumer": "ingest", "event_id": "e1"})
        await collection.insert_one({"consumer": "janitor", "event_id": "e1", "attempts": 0})

        updated = await collection.find_one_and_update(
            {"consumer": "ingest", "event_id": "e1"},
            {"$inc": {"attempts": 1}, "$set": {"state": "done"}},
            return_document=ReturnDocument.AFTER,
        )
        upserted = await collection.find_one_and_update(
            {"consumer": "evaluator", "event_id": "e2"},
            {"$setOnInsert": {"attempts": 0}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        found = [doc async for doc in collection.find({"event_id": "e1"}).sort("consumer", 1)]
    finally:
        await collection.drop()
        await client.close()

    assert updated is not None and updated["attempts"] == 1 and updated["state"] == "done"
    assert upserted is not None and upserted["attempts"] == 0
    assert [doc["consumer"] for doc in found] == ["ingest", "janitor"]
