"""What the evaluator keeps per record (its `evaluation_records` collection in Mongo), read
straight from the flywheel's evaluator database."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pymongo import MongoClient
from pymongo.collection import Collection

from flywheel_contracts.run_config import EvalType
from flywheel_evaluator.models import evaluation_id
from flywheel_evaluator.repository import RECORDS
from flywheel_localstack.services import FlywheelSetup


def record_details(
    setup: FlywheelSetup, run_id: UUID, candidate_model: str, eval_type: EvalType
) -> list[dict[str, Any]]:
    """The per-record detail of one evaluation of the run, by record index."""
    wanted = evaluation_id(run_id, candidate_model, eval_type)
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(setup.servers.mongo_url) as mongo:
        records: Collection[dict[str, Any]] = mongo[setup.database("evaluator")][RECORDS]
        return sorted(records.find({"evaluation_id": wanted}), key=lambda doc: int(doc["index"]))
