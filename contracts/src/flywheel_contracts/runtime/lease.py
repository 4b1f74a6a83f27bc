"""One named lease in Mongo: at most one live holder, taken over once it lapses, fenced.

A lease is one document: its holder, its expiry and a fencing token. The token grows by one
every time the lease changes hands (never on a renewal), so the token a holder got at the start
of some work names its tenure: if the lease lapsed during that work and anyone, itself
included, took it again, `hold()` answers a different token, and the stale tenure's next effect
is refused by the one who checks (`hold() == tenure` just before the effect).

Every transition is one conditional single-document update, so two instances racing can never
both win: a renewal matches only the holder's own unexpired document, a takeover only an
expired one, and a first holder's upsert inserts the `_id`, which the unique `_id` index lets
exactly one insert do. The lease's Mongo client must be tz-aware (the kit's is). Expiry
is judged by each instance's clock: keep clocks in sync (NTP) well within the ttl.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

_LAPSED = datetime(1970, 1, 1, tzinfo=UTC)


class Lease(Protocol):
    """Leadership of some work: exactly one instance holds it at a time."""

    holder_id: str

    @property
    def tenure(self) -> int | None:
        """The fencing token of this instance's tenure as of its last `hold()`; None when it
        did not hold the lease then."""
        ...

    async def hold(self) -> int | None:
        """Take or renew the lease: the fencing token while this instance holds it, None while
        another live instance does."""
        ...

    async def release(self) -> None:
        """Let a successor take over at once instead of after the ttl."""
        ...

    async def holder(self) -> str | None:
        """The instance holding an unexpired lease, if any."""
        ...


class MongoLease:
    """`Lease` on a Mongo collection (one document per lease name)."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        *,
        collection: str,
        name: str,
        holder_id: str,
        ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._leases = db[collection]
        self._name = name
        self.holder_id = holder_id
        self._ttl = ttl
        self._clock = clock
        self._tenure: int | None = None

    @property
    def tenure(self) -> int | None:
        return self._tenure

    async def hold(self) -> int | None:
        self._tenure = await self._renew() or await self._take()
        return self._tenure

    async def _renew(self) -> int | None:
        now = self._clock()
        lease = await self._leases.find_one_and_update(
            {"_id": self._name, "holder": self.holder_id, "expires_at": {"$gt": now}},
            {"$set": {"expires_at": now + self._ttl}},
            return_document=ReturnDocument.AFTER,
        )
        return _token(lease)

    async def _take(self) -> int | None:
        """A new tenure: of a lapsed lease (anyone's, this instance's included), or of one that
        never existed (the upsert's insert starts the token at 1). While another instance holds
        it, the filter misses and the insert collides on `_id`."""
        now = self._clock()
        try:
            lease = await self._leases.find_one_and_update(
                {"_id": self._name, "expires_at": {"$lte": now}},
                {
                    "$set": {"holder": self.holder_id, "expires_at": now + self._ttl},
                    "$inc": {"token": 1},
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return None
        return _token(lease)

    async def release(self) -> None:
        self._tenure = None
        await self._leases.update_one(
            {"_id": self._name, "holder": self.holder_id}, {"$set": {"expires_at": _LAPSED}}
        )

    async def holder(self) -> str | None:
        lease = await self._leases.find_one({"_id": self._name})
        if lease is None or lease["expires_at"] <= self._clock():
            return None
        holder: str = lease["holder"]
        return holder


def _token(lease: dict[str, Any] | None) -> int | None:
    return None if lease is None else int(lease.get("token", 1))
