"""The ledger in Mongo (FerretDB-compatible: plain updates with $set/$min/$max/$setOnInsert).

Every collection is the janitor's own. Idempotency comes from deterministic `_id`s: a resource is
`run/kind/id`, a history entry `run:entry`, a task its task id, so replayed events and retried
handlers write nothing twice.
"""

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from flywheel_janitor.ledger import (
    ENDED_OUTCOMES,
    HistoryEntry,
    ReclaimTask,
    ResourceRecord,
    RunRecord,
    ShutdownMark,
    StoppedInstance,
    Target,
    Terminal,
)
from flywheel_janitor.ports import ReclaimResult, RunFacts

M = TypeVar("M", bound=BaseModel)
Document = dict[str, Any]

_LIVE: Document = {"seen_up": True, "seen_down": False, "ended": False}


def _doc(model: BaseModel, **extra: Any) -> Document:
    return {**model.model_dump(mode="python"), **extra}


def _load(model: type[M], doc: Document | None) -> M | None:
    return None if doc is None else model.model_validate(doc)


def _resource_id(run_id: UUID, target: Target) -> str:
    return f"{run_id}/{target.key}"


class MongoLedger:
    """The `Ledger` port on the kit's database."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._runs = db["janitor_runs"]
        self._resources = db["janitor_resources"]
        self._history = db["janitor_history"]
        self._tasks = db["janitor_tasks"]
        self._shutdowns = db["janitor_shutdowns"]
        self._orphans = db["janitor_orphans"]
        self._instances = db["janitor_instances"]

    async def ensure_indexes(self) -> None:
        await self._runs.create_index([("terminal.cause_id", ASCENDING)])
        await self._runs.create_index([("active_at", ASCENDING)])
        await self._resources.create_index([("run_id", ASCENDING), ("first_seen_at", ASCENDING)])
        await self._resources.create_index(
            [("seen_up", ASCENDING), ("seen_down", ASCENDING), ("ended", ASCENDING)]
        )
        await self._history.create_index([("run_id", ASCENDING), ("at", ASCENDING)])
        await self._tasks.create_index([("done", ASCENDING), ("created_at", ASCENDING)])
        await self._shutdowns.create_index([("at", DESCENDING)])
        await self._instances.create_index([("stopped_at", DESCENDING)])

    # Runs.

    async def touch_run(self, facts: RunFacts) -> RunRecord:
        known = {
            name: value
            for name, value in (("workload_id", facts.workload_id), ("client_id", facts.client_id))
            if value is not None
        }
        doc = await self._runs.find_one_and_update(
            {"_id": str(facts.run_id)},
            {
                "$min": {"first_event_at": facts.at},
                "$max": {"active_at": facts.at},
                "$set": {"last_event_type": facts.event_type, **known},
                "$setOnInsert": {"run_id": str(facts.run_id), "terminal": None},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return RunRecord.model_validate(doc)

    async def get_run(self, run_id: UUID) -> RunRecord | None:
        return _load(RunRecord, await self._runs.find_one({"_id": str(run_id)}))

    async def end_run(self, run_id: UUID, terminal: Terminal) -> Terminal:
        await self._runs.update_one(
            {"_id": str(run_id), "terminal": None}, {"$set": {"terminal": _doc(terminal)}}
        )
        run = await self.get_run(run_id)
        if run is None or run.terminal is None:
            raise LookupError(f"run {run_id} is not in the ledger")
        return run.terminal

    async def mark_terminal_up_to(self, cutoff: datetime, terminal: Terminal) -> None:
        await self._runs.update_many(
            {"terminal": None, "first_event_at": {"$lte": cutoff}},
            {"$set": {"terminal": _doc(terminal)}},
        )

    async def runs_ended_by(self, cause_id: str) -> list[RunRecord]:
        docs = await self._runs.find({"terminal.cause_id": cause_id}).to_list()
        return [RunRecord.model_validate(doc) for doc in docs]

    async def mark_active(self, run_id: UUID, at: datetime) -> None:
        await self._runs.update_one({"_id": str(run_id)}, {"$max": {"active_at": at}})

    async def quiet_runs(self, run_ids: Sequence[UUID], before: datetime) -> list[RunRecord]:
        if not run_ids:
            return []
        docs = await self._runs.find(
            {"_id": {"$in": [str(r) for r in run_ids]}, "active_at": {"$lt": before}}
        ).to_list()
        return [RunRecord.model_validate(doc) for doc in docs]

    # Resources.

    async def record_up(
        self, run_id: UUID, target: Target, at: datetime, detail: str | None = None
    ) -> None:
        known = {"namespace": target.namespace, "detail": detail}
        await self._resources.update_one(
            {"_id": _resource_id(run_id, target)},
            {
                "$set": {"seen_up": True, **{k: v for k, v in known.items() if v is not None}},
                "$min": {"up_at": at, "first_seen_at": at},
                "$setOnInsert": self._new_resource(run_id, target, seen_down=False),
            },
            upsert=True,
        )

    async def record_down(self, run_id: UUID, target: Target, at: datetime) -> None:
        await self._resources.update_one(
            {"_id": _resource_id(run_id, target)},
            {
                "$set": {"seen_down": True},
                "$min": {"down_at": at, "first_seen_at": at},
                "$setOnInsert": self._new_resource(run_id, target, seen_up=False),
            },
            upsert=True,
        )

    @staticmethod
    def _new_resource(run_id: UUID, target: Target, **flags: bool) -> Document:
        return {
            "run_id": str(run_id),
            "kind": target.kind.value,
            "resource_id": target.resource_id,
            "ended": False,
            **flags,
        }

    async def record_outcome(
        self, run_id: UUID, target: Target, result: ReclaimResult, *, at: datetime, task_id: str
    ) -> None:
        update: Document = {
            "outcome": result.outcome.value,
            "error": result.error,
            "outcome_at": at,
            "outcome_task": task_id,
        }
        if result.outcome in ENDED_OUTCOMES:
            update["ended"] = True
        await self._resources.update_one({"_id": _resource_id(run_id, target)}, {"$set": update})

    async def live_resources(self, run_id: UUID | None = None) -> list[ResourceRecord]:
        query = _LIVE if run_id is None else {**_LIVE, "run_id": str(run_id)}
        docs = await self._resources.find(query).sort("first_seen_at", ASCENDING).to_list()
        return [ResourceRecord.model_validate(doc) for doc in docs]

    async def resources_of(self, run_id: UUID) -> list[ResourceRecord]:
        docs = (
            await self._resources.find({"run_id": str(run_id)})
            .sort("first_seen_at", ASCENDING)
            .to_list()
        )
        return [ResourceRecord.model_validate(doc) for doc in docs]

    # History.

    async def add_history(self, entry: HistoryEntry) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self._history.insert_one(_doc(entry, _id=f"{entry.run_id}:{entry.entry_id}"))

    async def history(self, run_id: UUID) -> list[HistoryEntry]:
        docs = await self._history.find({"run_id": str(run_id)}).sort("at", ASCENDING).to_list()
        return [HistoryEntry.model_validate(doc) for doc in docs]

    # Reclaim tasks.

    async def add_task(self, task: ReclaimTask) -> bool:
        try:
            await self._tasks.insert_one(_doc(task, _id=task.task_id))
        except DuplicateKeyError:
            return False
        return True

    async def pending_tasks(self, limit: int) -> list[ReclaimTask]:
        docs = (
            await self._tasks.find({"done": False})
            .sort("created_at", ASCENDING)
            .limit(limit)
            .to_list()
        )
        return [ReclaimTask.model_validate(doc) for doc in docs]

    async def has_pending_task(self, run_id: UUID) -> bool:
        found = await self._tasks.find_one(
            {"done": False, "run_id": str(run_id)}, projection={"_id": 1}
        )
        return found is not None

    async def save_report(self, task_id: str, report: str) -> None:
        await self._tasks.update_one({"_id": task_id}, {"$set": {"report": report}})

    async def finish_task(self, task_id: str) -> None:
        await self._tasks.update_one(
            {"_id": task_id}, {"$set": {"done": True, "done_at": datetime.now(UTC)}}
        )

    # Shutdowns, orphans and stopped instances.

    async def record_shutdown(self, mark: ShutdownMark) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self._shutdowns.insert_one(_doc(mark, _id=mark.event_id))

    async def latest_shutdown(self) -> ShutdownMark | None:
        docs = await self._shutdowns.find().sort("at", DESCENDING).limit(1).to_list()
        return _load(ShutdownMark, docs[0] if docs else None)

    async def sight_orphans(self, targets: Sequence[Target], now: datetime) -> dict[str, datetime]:
        keys = [target.key for target in targets]
        # What is no longer unknown (or no longer there) starts its grace period afresh.
        await self._orphans.delete_many({"_id": {"$nin": keys}})
        for target in targets:
            await self._orphans.update_one(
                {"_id": target.key},
                {"$setOnInsert": {"first_seen_at": now}, "$set": {"last_seen_at": now}},
                upsert=True,
            )
        docs = await self._orphans.find({"_id": {"$in": keys}}).to_list()
        return {doc["_id"]: doc["first_seen_at"] for doc in docs}

    async def forget_orphans(self, keys: Sequence[str]) -> None:
        await self._orphans.delete_many({"_id": {"$in": list(keys)}})

    async def record_stopping(self, instance: StoppedInstance) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self._instances.insert_one(_doc(instance, _id=instance.event_id))

    async def stopped_instances(self, limit: int) -> list[StoppedInstance]:
        docs = await self._instances.find().sort("stopped_at", DESCENDING).limit(limit).to_list()
        return [StoppedInstance.model_validate(doc) for doc in docs]
