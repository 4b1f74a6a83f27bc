"""The per-record detail the evaluator serves (`GET /runs/{run}/records`) says, per record, the
dialect the candidate's calls came in, and the verdict names any dialect but `tool_calls`."""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from flywheel_contracts.events import DatasetRef
from flywheel_contracts.report.drilldown import Drilldown
from flywheel_evaluator.api import records_router
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.dataset import parse_items
from flywheel_evaluator.dialects import Dialect
from flywheel_evaluator.models import EvaluationJob, RecordResult, evaluation_id
from flywheel_evaluator.repository import EvaluationRepository

from .fakes import CANDIDATE, RUN_ID, job, tool_record

pytestmark = pytest.mark.unit

DATASET = DatasetRef(namespace="dfwbp", name="eval", files_url="hf://datasets/dfwbp/eval")


class Stored:
    """The repository and dataset reads the router makes."""

    def __init__(self, evaluation: EvaluationJob, results: list[RecordResult]) -> None:
        self.evaluation, self.results = evaluation, results

    async def get(self, evaluation_id: str) -> EvaluationJob | None:
        return self.evaluation if evaluation_id == self.evaluation.id else None

    async def load_records(self, _evaluation_id: str) -> list[RecordResult]:
        return self.results

    async def items(self, _dataset: DatasetRef, _limit: int) -> list[Any]:
        content = "\n".join(json.dumps(tool_record(i)) for i in range(3))
        return parse_items(content.encode())


async def test_each_record_says_its_dialect() -> None:
    evaluation = job(DATASET, id=evaluation_id(RUN_ID, CANDIDATE, job(DATASET).eval_type))
    scores = {"function_name_accuracy": 0.0, "function_name_accuracy_lenient": 1.0}
    results = [
        RecordResult(
            index=0,
            ok=True,
            dialect=Dialect.CONTENT_JSON,
            scores=scores,
            prediction={"content": '{"name": "get_weather"}', "tool_calls": None},
        ),
        RecordResult(
            index=1,
            ok=True,
            dialect=Dialect.TOOL_CALLS,
            scores=scores,
            prediction={"content": None, "tool_calls": []},
        ),
        RecordResult(index=2, ok=False, error="POST ... -> 500"),
    ]
    stored = Stored(evaluation, results)
    app = FastAPI()
    app.include_router(
        records_router(cast(EvaluationRepository, stored), cast(DatasetFiles, stored))
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://evaluator") as client:
        response = await client.get(
            f"/runs/{RUN_ID}/records", params={"candidate": CANDIDATE, "eval_type": "base"}
        )
    assert response.status_code == 200
    records = response.json()["records"]
    assert [r["dialect"] for r in records] == ["content_json", "tool_calls", None]
    assert records[0]["verdict"].endswith("(calls: content_json)")
    assert "(calls:" not in records[1]["verdict"]
    # The report's reader of the contract still reads it.
    assert len(Drilldown.model_validate_json(response.content).records) == 3
