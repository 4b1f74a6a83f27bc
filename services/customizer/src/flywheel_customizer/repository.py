"""The customizer's collections: one record per run and candidate (`customizations`), the runs
it was told to cancel (`cancelled_runs`) and the reconciler lease (`customizer_leases`).

The record key is the document `_id`, so its uniqueness needs no extra index and a repeated
insert fails with DuplicateKeyError. Only FerretDB-safe operations are used.
"""

import contextlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from flywheel_customizer.jobs import CustomizationRecord, Phase

RECORDS = "customizations"
CANCELLED_RUNS = "cancelled_runs"

Document = dict[str, Any]


class MongoCustomizations:
    def __init__(self, db: AsyncDatabase[Document], clock: Callable[[], datetime]) -> None:
        self._records = db[RECORDS]
        self._cancelled = db[CANCELLED_RUNS]
        self._clock = clock

    async def ensure_indexes(self) -> None:
        await self._records.create_index([("done_published", ASCENDING)], name="open_records")
        await self._records.create_index([("run_id", ASCENDING)], name="by_run")

    async def add(self, record: CustomizationRecord) -> bool:
        try:
            await self._records.insert_one(record.to_document())
        except DuplicateKeyError:
            return False
        return True

    async def active(self) -> list[CustomizationRecord]:
        cursor = self._records.find({"done_published": False}).sort("received_at", ASCENDING)
        return [CustomizationRecord.model_validate(doc) async for doc in cursor]

    async def save(self, record: CustomizationRecord, *, expected: Phase) -> bool:
        result = await self._records.replace_one(
            {"_id": record.key, "phase": expected.value}, record.to_document()
        )
        return result.matched_count == 1

    async def cancel_run(self, run_id: str, reason: str) -> None:
        # Cancelled before: the first reason stands.
        with contextlib.suppress(DuplicateKeyError):
            await self._cancelled.insert_one(
                {"_id": run_id, "reason": reason, "cancelled_at": self._clock()}
            )

    async def cancellations(self, run_ids: Iterable[str]) -> dict[str, str]:
        cursor = self._cancelled.find({"_id": {"$in": list(run_ids)}})
        return {doc["_id"]: doc["reason"] async for doc in cursor}
