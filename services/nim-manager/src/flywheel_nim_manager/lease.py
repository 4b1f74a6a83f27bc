"""The scheduler lease: one Mongo document naming the active instance until an expiry time.

Taken with one atomic find_one_and_update that matches only when this instance already holds it
or it has lapsed; when another instance holds it, the upsert collides on `_id` and fails. The
holder renews it every pass, so a standby takes over at most `ttl` after the holder died. Expiry
is judged by each instance's clock: keep clocks in sync (NTP) well within the ttl.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from flywheel_nim_manager.ports import Clock

LEASES = "nim_manager_leases"
SCHEDULER = "scheduler"

_LAPSED = datetime(1970, 1, 1, tzinfo=UTC)


class MongoLease:
    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        holder_id: str,
        ttl: timedelta,
        clock: Clock,
        name: str = SCHEDULER,
    ) -> None:
        self._leases = db[LEASES]
        self.holder_id = holder_id
        self._ttl = ttl
        self._clock = clock
        self._name = name

    async def hold(self) -> bool:
        now = self._clock()
        try:
            lease = await self._leases.find_one_and_update(
                {
                    "_id": self._name,
                    "$or": [{"holder": self.holder_id}, {"expires_at": {"$lt": now}}],
                },
                {"$set": {"holder": self.holder_id, "expires_at": now + self._ttl}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False  # held by another instance and not lapsed
        return lease is not None and lease.get("holder") == self.holder_id

    async def release(self) -> None:
        await self._leases.update_one(
            {"_id": self._name, "holder": self.holder_id}, {"$set": {"expires_at": _LAPSED}}
        )

    async def holder(self) -> str | None:
        lease = await self._leases.find_one({"_id": self._name})
        if lease is None or lease["expires_at"] <= self._clock():
            return None
        holder: str = lease["holder"]
        return holder
