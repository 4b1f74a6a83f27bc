"""Which events a consumer has already processed, so a redelivered or re-published one is skipped.

An id is marked only after the handler's effect and its publishes succeeded: marking first would
lose the event if the process died in between. FerretDB has no TTL index, so old entries are
swept by `expire_older_than`, run periodically by the service app.
"""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

COLLECTION = "processed_events"

_log = structlog.get_logger(__name__)


class ProcessedEvents:
    """Processed event ids of one consumer, in the shared `processed_events` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], consumer: str) -> None:
        self._collection = db[COLLECTION]
        self._consumer = consumer

    async def ensure_indexes(self) -> None:
        await self._collection.create_index(
            [("consumer", ASCENDING), ("event_id", ASCENDING)],
            unique=True,
            name="consumer_event_id_unique",
        )
        await self._collection.create_index(
            [("consumer", ASCENDING), ("processed_at", ASCENDING)], name="consumer_processed_at"
        )

    async def seen(self, event_id: UUID) -> bool:
        found = await self._collection.find_one(
            {"consumer": self._consumer, "event_id": str(event_id)}, projection={"_id": 1}
        )
        return found is not None

    async def mark(self, event_id: UUID, event_type: str) -> None:
        """Record `event_id` as processed; marking twice is harmless."""
        with contextlib.suppress(DuplicateKeyError):
            await self._collection.insert_one(
                {
                    "consumer": self._consumer,
                    "event_id": str(event_id),
                    "event_type": event_type,
                    "processed_at": datetime.now(UTC),
                }
            )

    async def expire_older_than(self, age: timedelta) -> int:
        """Forget ids processed more than `age` ago; returns how many were removed."""
        cutoff = datetime.now(UTC) - age
        result = await self._collection.delete_many(
            {"consumer": self._consumer, "processed_at": {"$lt": cutoff}}
        )
        return result.deleted_count

    async def sweep_forever(self, retention: timedelta, interval_s: float) -> None:
        """Expire old entries every `interval_s` seconds until cancelled."""
        while True:
            try:
                removed = await self.expire_older_than(retention)
            except Exception as exc:  # a failed sweep is retried at the next interval
                _log.warning("processed_events.sweep_failed", error=str(exc))
            else:
                if removed:
                    _log.info("processed_events.expired", removed=removed)
            await asyncio.sleep(interval_s)
