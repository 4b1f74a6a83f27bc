"""The service's own collection `dataset_jobs`: one document per run, keyed by the run id.

A job is recorded by the `run.requested` handler, claimed under a lease by a reconciler, and
ends with its outcome event stored in the document (an outbox) until it is published. The run
id as `_id` makes a second request for a run a no-op: nothing is built twice. A cancellation
that arrives before its request leaves a tombstone, so the late request is not built either.
Only single-document atomic updates are used (FerretDB has no transactions).
"""

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from flywheel_contracts.runtime.clock import utc_now

COLLECTION = "dataset_jobs"


class JobStatus(StrEnum):
    PENDING = "pending"
    BUILDING = "building"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


_ACTIVE = [JobStatus.PENDING.value, JobStatus.BUILDING.value]


@dataclass(frozen=True)
class Job:
    run_id: UUID
    status: JobStatus
    request: str | None
    """The `run.requested` envelope as JSON (None for a tombstone): the cause of the outcome."""
    config: dict[str, Any] | None
    attempts: int
    outcome: str | None
    published: bool

    @classmethod
    def of(cls, document: dict[str, Any]) -> "Job":
        return cls(
            run_id=UUID(document["_id"]),
            status=JobStatus(document["status"]),
            request=document.get("request"),
            config=document.get("config"),
            attempts=document.get("attempts", 0),
            outcome=document.get("outcome"),
            published=document.get("published", True),
        )


class JobStore(Protocol):
    """What the service needs from its job collection (JobRepository; a fake in unit tests)."""

    async def ensure_indexes(self) -> None: ...
    async def get(self, run_id: UUID) -> Job | None: ...
    async def create(
        self,
        run_id: UUID,
        *,
        request: str,
        config: dict[str, Any] | None,
        outcome: str | None = None,
    ) -> Job | None: ...
    async def tombstone(self, run_id: UUID) -> bool: ...
    async def settle_tombstone(self, run_id: UUID, *, request: str, outcome: str) -> bool: ...
    async def claim(self, owner: str, lease: timedelta) -> Job | None: ...
    async def renew(self, run_id: UUID, owner: str, lease: timedelta) -> bool: ...
    async def finish(self, run_id: UUID, owner: str, status: JobStatus, outcome: str) -> bool: ...
    async def release(self, run_id: UUID, owner: str) -> None: ...
    async def cancel(self, run_id: UUID, outcome: str) -> bool: ...
    async def unpublished(self) -> list[Job]: ...
    async def mark_published(self, run_id: UUID) -> None: ...


class JobRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._jobs = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        await self._jobs.create_index([("status", ASCENDING), ("created_at", ASCENDING)])
        await self._jobs.create_index([("published", ASCENDING)])

    async def get(self, run_id: UUID) -> Job | None:
        document = await self._jobs.find_one({"_id": str(run_id)})
        return Job.of(document) if document else None

    async def create(
        self,
        run_id: UUID,
        *,
        request: str,
        config: dict[str, Any] | None,
        outcome: str | None = None,
    ) -> Job | None:
        """Record a new job (failed at once when `outcome` is given); None if the run has one."""
        now = utc_now()
        document = {
            "_id": str(run_id),
            "status": (JobStatus.FAILED if outcome else JobStatus.PENDING).value,
            "request": request,
            "config": config,
            "attempts": 0,
            "owner": None,
            "lease_until": None,
            "outcome": outcome,
            "published": outcome is None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._jobs.insert_one(document)
        except DuplicateKeyError:
            return None
        return Job.of(document)

    async def tombstone(self, run_id: UUID) -> bool:
        """Mark a run cancelled before its request arrived; False if the run has a job."""
        now = utc_now()
        try:
            await self._jobs.insert_one(
                {
                    "_id": str(run_id),
                    "status": JobStatus.CANCELLED.value,
                    "request": None,
                    "outcome": None,
                    "published": True,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def settle_tombstone(self, run_id: UUID, *, request: str, outcome: str) -> bool:
        """A request that arrives after its cancellation: record it with its (failed) outcome."""
        result = await self._jobs.update_one(
            {"_id": str(run_id), "request": None},
            {"$set": {"request": request, "outcome": outcome, "published": False}},
        )
        return result.modified_count == 1

    async def claim(self, owner: str, lease: timedelta) -> Job | None:
        """Take the oldest job nobody holds (new, or whose owner stopped renewing its lease)."""
        now = utc_now()
        document = await self._jobs.find_one_and_update(
            {
                "status": {"$in": _ACTIVE},
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
            },
            {
                "$set": {
                    "status": JobStatus.BUILDING.value,
                    "owner": owner,
                    "lease_until": now + lease,
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
            sort=[("created_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return Job.of(document) if document else None

    async def renew(self, run_id: UUID, owner: str, lease: timedelta) -> bool:
        """Extend the lease; False when the job is no longer this owner's build (cancelled)."""
        now = utc_now()
        result = await self._jobs.update_one(
            {"_id": str(run_id), "owner": owner, "status": JobStatus.BUILDING.value},
            {"$set": {"lease_until": now + lease, "updated_at": now}},
        )
        return result.matched_count == 1

    async def finish(self, run_id: UUID, owner: str, status: JobStatus, outcome: str) -> bool:
        """Store the build's outcome for publishing; False if the build was cancelled meanwhile."""
        result = await self._jobs.update_one(
            {"_id": str(run_id), "owner": owner, "status": JobStatus.BUILDING.value},
            {
                "$set": {
                    "status": status.value,
                    "outcome": outcome,
                    "published": False,
                    "owner": None,
                    "lease_until": None,
                    "updated_at": utc_now(),
                }
            },
        )
        return result.matched_count == 1

    async def release(self, run_id: UUID, owner: str) -> None:
        """Give an interrupted build back, to be claimed again at once; a build stopped by a
        shutdown does not count against the job's attempts."""
        await self._jobs.update_one(
            {"_id": str(run_id), "owner": owner, "status": JobStatus.BUILDING.value},
            {
                "$set": {"status": JobStatus.PENDING.value, "owner": None, "lease_until": None},
                "$inc": {"attempts": -1},
            },
        )

    async def cancel(self, run_id: UUID, outcome: str) -> bool:
        """Cancel a job not finished yet; False if it already ended."""
        result = await self._jobs.update_one(
            {"_id": str(run_id), "status": {"$in": _ACTIVE}},
            {
                "$set": {
                    "status": JobStatus.CANCELLED.value,
                    "outcome": outcome,
                    "published": False,
                    "lease_until": None,
                    "updated_at": utc_now(),
                }
            },
        )
        return result.matched_count == 1

    async def unpublished(self) -> list[Job]:
        cursor = self._jobs.find({"published": False}).sort("updated_at", ASCENDING)
        return [Job.of(document) async for document in cursor]

    async def mark_published(self, run_id: UUID) -> None:
        await self._jobs.update_one({"_id": str(run_id)}, {"$set": {"published": True}})
