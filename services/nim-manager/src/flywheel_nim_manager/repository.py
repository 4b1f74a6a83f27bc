"""Runs and candidates in Mongo (collections owned by nim-manager).

Run documents keep their deciding events whole (as the envelope's JSON) so the reconciler can
derive event ids from them. Candidate documents are keyed by run and model; the scheduler's
fields are written with the phase it expects as a condition, the work outcomes by the handlers
under their own field, so the two writers never overwrite each other.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from flywheel_contracts.envelope import Envelope, decode, encode
from flywheel_contracts.events import DatasetFailed, DatasetReady, RunCancelled
from flywheel_nim_manager.records import (
    CandidateRecord,
    Phase,
    RunRecord,
    WorkItem,
    WorkOutcome,
    candidate_key,
)

RUNS = "nim_manager_runs"
CANDIDATES = "nim_manager_candidates"

_DUPLICATE_KEY = 11000
_TIMES = ("queued_at", "granted_at", "up_at", "ended_at")
# What the scheduler owns; everything else of a candidate is fixed at planning or handler-owned.
_SCHEDULER_FIELDS = ("phase", "granted_at", "granted_by", "created", "up_at", "ending", "ended_at")


class MongoRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._runs = db[RUNS]
        self._candidates = db[CANDIDATES]

    async def ensure_indexes(self) -> None:
        await self._runs.create_index([("finished", ASCENDING)], name="finished")
        await self._candidates.create_index(
            [("run_id", ASCENDING), ("model", ASCENDING)], unique=True, name="run_model_unique"
        )

    # Handler side.

    async def add_ready(
        self, ready: Envelope[DatasetReady], candidates: Sequence[CandidateRecord]
    ) -> bool:
        run_id = _key(ready.run_id)
        known = await self._runs.find_one({"_id": run_id}, projection={"ready": 1, "finished": 1})
        if known is not None and (known.get("ready") or known.get("finished")):
            return False
        # Candidates first: a run whose datasets are recorded must already have them, or the
        # scheduler could conclude it has none.
        await self._insert_candidates(candidates)
        try:
            await self._runs.update_one(
                {"_id": run_id, "finished": False},
                {
                    "$set": {"ready": _raw(ready)},
                    "$setOnInsert": {"created_at": datetime.now(UTC)},
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # finished meanwhile (cancelled): its candidates are never scheduled
        return True

    async def _insert_candidates(self, candidates: Sequence[CandidateRecord]) -> None:
        if not candidates:
            return
        try:
            await self._candidates.insert_many(
                [_candidate_doc(c) for c in candidates], ordered=False
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise

    async def add_cancelled(self, cancelled: Envelope[RunCancelled]) -> None:
        await self._add_stop(cancelled, "cancelled")

    async def add_dataset_failed(self, failed: Envelope[DatasetFailed]) -> None:
        await self._add_stop(failed, "dataset_failed")

    async def _add_stop(self, event: Envelope[Any], field: str) -> None:
        await self._runs.update_one(
            {"_id": _key(event.run_id)},
            {
                "$set": {field: _raw(event)},
                "$setOnInsert": {"finished": False, "created_at": datetime.now(UTC)},
            },
            upsert=True,
        )

    async def record_outcome(
        self, run_id: UUID, model: str, item: WorkItem, outcome: WorkOutcome
    ) -> bool:
        result = await self._candidates.update_one(
            {"_id": candidate_key(run_id, model)},
            {"$set": {f"outcomes.{item.value}": outcome.model_dump(mode="json")}},
        )
        return result.matched_count > 0

    # Scheduler side.

    async def open_runs(self) -> list[RunRecord]:
        return [_run(doc) async for doc in self._runs.find({"finished": False})]

    async def candidates(self, run_ids: Iterable[UUID]) -> list[CandidateRecord]:
        keys = [str(run_id) for run_id in run_ids]
        if not keys:
            return []
        cursor = self._candidates.find({"run_id": {"$in": keys}})
        return [CandidateRecord.model_validate(doc) async for doc in cursor]

    async def save(self, record: CandidateRecord, expected: Phase) -> bool:
        doc = _candidate_doc(record)
        result = await self._candidates.update_one(
            {"_id": record.key, "phase": expected.value},
            {"$set": {field: doc[field] for field in _SCHEDULER_FIELDS}},
        )
        return result.matched_count > 0

    async def finish_run(self, run_id: UUID) -> None:
        await self._runs.update_one(
            {"_id": str(run_id)}, {"$set": {"finished": True, "finished_at": datetime.now(UTC)}}
        )


def _key(run_id: UUID | None) -> str:
    assert run_id is not None, "run-scoped events always carry a run id"
    return str(run_id)


def _raw(event: Envelope[Any]) -> str:
    return encode(event).decode()


def _event(doc: dict[str, Any], field: str) -> Envelope[Any] | None:
    raw = doc.get(field)
    return decode(raw.encode()) if raw else None


def _run(doc: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=UUID(doc["_id"]),
        ready=cast("Envelope[DatasetReady] | None", _event(doc, "ready")),
        cancelled=cast("Envelope[RunCancelled] | None", _event(doc, "cancelled")),
        dataset_failed=cast("Envelope[DatasetFailed] | None", _event(doc, "dataset_failed")),
        finished=bool(doc.get("finished")),
    )


def _candidate_doc(record: CandidateRecord) -> dict[str, Any]:
    # JSON mode for the nested parts; the timestamps stay dates so Mongo sorts and compares them.
    doc = record.model_dump(mode="json", exclude=set(_TIMES))
    doc.update({field: getattr(record, field) for field in _TIMES})
    doc["_id"] = record.key
    return doc
