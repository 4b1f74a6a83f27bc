"""Mongo state of the evaluator (its own collections):

- `evaluations`: one document per evaluation, `_id` the deterministic evaluation id (so a
  repeated trigger cannot create a second one), with its status, lease, outcome and whether
  the outcome was published;
- `evaluation_records`: the per-record detail, `_id` = `<evaluation id>:<record index>`;
- `cancelled_runs`: runs cancelled, so a trigger arriving after run.cancelled is not started.

Every state change of a claimed job is conditional on the owner and a live status, so an
instance that lost its lease, or a job cancelled meanwhile, can never be overwritten.
"""

import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from flywheel_evaluator.models import TERMINAL, EvaluationJob, JobStatus, RecordResult

EVALUATIONS = "evaluations"
RECORDS = "evaluation_records"
CANCELLED_RUNS = "cancelled_runs"

_LIVE = [JobStatus.PENDING.value, JobStatus.RUNNING.value]
_DUPLICATE_KEY = 11000


def _to_doc(job: EvaluationJob) -> dict[str, Any]:
    doc = job.model_dump(mode="python", exclude={"id"})
    doc["_id"] = job.id
    # Plain values for BSON: ids as text, enums as their values.
    doc.update(
        run_id=str(job.run_id),
        dataset=job.dataset.model_dump(mode="json"),
        eval_type=job.eval_type.value,
        workload_type=job.workload_type.value,
        status=job.status.value,
    )
    return doc


def _from_doc(doc: dict[str, Any]) -> EvaluationJob:
    return EvaluationJob.model_validate({**doc, "id": doc["_id"]})


class EvaluationRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._jobs = db[EVALUATIONS]
        self._records = db[RECORDS]
        self._cancelled = db[CANCELLED_RUNS]

    async def ensure_indexes(self) -> None:
        await self._jobs.create_index(
            [("run_id", ASCENDING), ("candidate_model", ASCENDING), ("eval_type", ASCENDING)],
            unique=True,
            name="run_candidate_type_unique",
        )
        await self._jobs.create_index(
            [("status", ASCENDING), ("lease_until", ASCENDING)], name="status_lease"
        )
        await self._jobs.create_index([("published", ASCENDING)], name="published")
        await self._records.create_index([("evaluation_id", ASCENDING)], name="evaluation_id")

    # Triggers and cancellation.

    async def create(self, job: EvaluationJob) -> bool:
        """Insert `job`; False when the evaluation exists already (a repeated trigger)."""
        try:
            await self._jobs.insert_one(_to_doc(job))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, evaluation_id: str) -> EvaluationJob | None:
        doc = await self._jobs.find_one({"_id": evaluation_id})
        return _from_doc(doc) if doc else None

    async def mark_run_cancelled(self, run_id: UUID, at: datetime) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self._cancelled.insert_one({"_id": str(run_id), "cancelled_at": at})

    async def is_run_cancelled(self, run_id: UUID) -> bool:
        return await self._cancelled.find_one({"_id": str(run_id)}) is not None

    async def live_jobs_of_run(self, run_id: UUID) -> list[EvaluationJob]:
        cursor = self._jobs.find({"run_id": str(run_id), "status": {"$in": _LIVE}})
        return [_from_doc(doc) async for doc in cursor]

    async def cancel(self, job_id: str, outcome: dict[str, Any], at: datetime) -> bool:
        """Cancel a live job; False when it ended (or was cancelled) meanwhile."""
        result = await self._jobs.update_one(
            {"_id": job_id, "status": {"$in": _LIVE}},
            {
                "$set": {
                    "status": JobStatus.CANCELLED.value,
                    "outcome": outcome,
                    "finished_at": at,
                    "owner": None,
                }
            },
        )
        return result.modified_count == 1

    # Claims and the claimed job's state.

    async def claim(self, owner: str, now: datetime, lease: timedelta) -> EvaluationJob | None:
        """Take the oldest live job nobody holds (new, or its owner's lease ran out)."""
        doc = await self._jobs.find_one_and_update(
            {
                "status": {"$in": _LIVE},
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
            },
            {
                "$set": {
                    "status": JobStatus.RUNNING.value,
                    "owner": owner,
                    "lease_until": now + lease,
                },
                "$inc": {"attempts": 1},
            },
            sort=[("created_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return _from_doc(doc) if doc else None

    async def _update_owned(self, job_id: str, owner: str, fields: dict[str, Any]) -> bool:
        result = await self._jobs.update_one(
            {"_id": job_id, "owner": owner, "status": JobStatus.RUNNING.value}, {"$set": fields}
        )
        return result.matched_count == 1

    async def renew(self, job_id: str, owner: str, until: datetime) -> bool:
        """Extend the lease; False when the job is no longer this owner's running job."""
        return await self._update_owned(job_id, owner, {"lease_until": until})

    async def set_fields(self, job_id: str, owner: str, **fields: Any) -> bool:
        """started_at, started_published, nmp_job_id, progress_bucket of an owned job."""
        return await self._update_owned(job_id, owner, fields)

    async def finish(self, job_id: str, owner: str, outcome: dict[str, Any], at: datetime) -> bool:
        """Record the outcome; False when the job was cancelled or taken over meanwhile."""
        return await self._update_owned(
            job_id,
            owner,
            {
                "status": JobStatus.FINISHED.value,
                "outcome": outcome,
                "finished_at": at,
                "owner": None,
                "lease_until": None,
            },
        )

    async def release(self, owner: str) -> None:
        """Let any instance take this owner's jobs at once (graceful stop)."""
        await self._jobs.update_many(
            {"owner": owner, "status": JobStatus.RUNNING.value},
            {"$set": {"owner": None, "lease_until": None}},
        )

    # The outbox: ended jobs whose eval.done is not yet acknowledged by Kafka.

    async def unpublished(
        self, run_id: UUID | None = None, limit: int = 100
    ) -> list[EvaluationJob]:
        query: dict[str, Any] = {
            "status": {"$in": [s.value for s in TERMINAL]},
            "published": False,
        }
        if run_id is not None:
            query["run_id"] = str(run_id)
        cursor = self._jobs.find(query).sort("finished_at", ASCENDING).limit(limit)
        return [_from_doc(doc) async for doc in cursor]

    async def mark_published(self, job_id: str) -> None:
        await self._jobs.update_one({"_id": job_id}, {"$set": {"published": True}})

    # Per-record detail.

    async def save_records(self, job: EvaluationJob, results: Sequence[RecordResult]) -> None:
        docs = [
            {
                **result.model_dump(mode="json"),
                "_id": f"{job.id}:{result.index}",
                "evaluation_id": job.id,
                "run_id": str(job.run_id),
            }
            for result in results
        ]
        try:
            await self._records.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            # A record saved before a restart is saved again: the first copy stands.
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise

    async def load_records(self, evaluation_id: str) -> list[RecordResult]:
        cursor = self._records.find({"evaluation_id": evaluation_id})
        return [RecordResult.model_validate(doc) async for doc in cursor]
