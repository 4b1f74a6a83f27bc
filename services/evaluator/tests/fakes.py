"""Fakes for the unit tests: a chat server (candidate + judge) behind an httpx transport that
also serves RecordedNmp's Data Store, and an in-memory JobContext."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx

from flywheel_contracts.events import DatasetRef
from flywheel_contracts.run_config import EvalType, WorkloadType
from flywheel_contracts.runtime.nmp import NmpSettings
from flywheel_contracts.runtime.nmp.testing import RecordedNmp
from flywheel_evaluator.models import EvaluationJob, RecordResult

NS = "dfwbp"
DATASET = "flywheel-eval-unit-1"
CANDIDATE = "meta/llama-3.2-1b-instruct"
JUDGE = "meta/llama-3.3-70b-instruct"
BASE_URL = "http://candidate.test/v1"
RUN_ID = UUID("11111111-2222-4333-8444-555555555555")

Answer = Callable[[dict[str, Any]], httpx.Response]


def tool_record(i: int, name: str = "get_weather", city: str | None = None) -> dict[str, Any]:
    arguments = {"city": city or f"city-{i}", "days": i % 5}
    return {
        "request": {
            "messages": [{"role": "user", "content": f"question {i}"}],
            "tools": [{"type": "function", "function": {"name": name, "parameters": {}}}],
        },
        "response": {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"type": "function", "function": {"name": name, "arguments": arguments}}
                        ],
                    }
                }
            ]
        },
    }


def completion(
    message: dict[str, Any], prompt_tokens: int = 10, completion_tokens: int = 5
) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"index": 0, "message": {"role": "assistant", **message}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        },
    )


class FakeNmp:
    """RecordedNmp for the Data Store, plus scripted chat answers for candidate and judge."""

    def __init__(self, candidate: Answer, judge: Answer) -> None:
        self.settings = NmpSettings()
        self.recorded = RecordedNmp(self.settings)
        self._candidate, self._judge = candidate, judge
        self.chat_requests: Counter[str] = Counter()

    def upload(self, records: Sequence[dict[str, Any]], name: str = DATASET) -> DatasetRef:
        content = "\n".join(json.dumps(r) for r in records).encode()
        self.recorded.state.repos[f"{NS}/{name}"] = {"eval_data.jsonl": content}
        return DatasetRef(namespace=NS, name=name, files_url=f"hf://datasets/{NS}/{name}")

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/chat/completions"):
            body = json.loads(request.content)
            self.chat_requests[body["model"]] += 1
            return self._judge(body) if body["model"] == JUDGE else self._candidate(body)
        return self.recorded.handle(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def job(
    dataset: DatasetRef, workload: WorkloadType = WorkloadType.TOOL_CALLING, **changes: Any
) -> EvaluationJob:
    fields: dict[str, Any] = {
        "id": "eval-unit",
        "run_id": RUN_ID,
        "candidate_model": CANDIDATE,
        "eval_type": EvalType.BASE,
        "target_model": CANDIDATE,
        "base_url": BASE_URL,
        "dataset": dataset,
        "workload_type": workload,
        "judge_model": JUDGE,
        "timeout_seconds": 60,
        "limit": 1000,
        "cause": "{}",
        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
    }
    return EvaluationJob(**{**fields, **changes})


class MemoryContext:
    """A JobContext keeping everything in lists."""

    def __init__(self, job: EvaluationJob, saved: Sequence[RecordResult] = ()) -> None:
        self.job = job
        self.saved: dict[int, RecordResult] = {r.index: r for r in saved}
        self.started_ids: list[str] = []
        self.progress_reports: list[tuple[int, int]] = []
        self.nmp_jobs: list[str] = []

    async def started(self, job_id: str) -> None:
        self.started_ids.append(job_id)

    async def progress(self, done: int, total: int) -> None:
        self.progress_reports.append((done, total))

    async def load_records(self) -> list[RecordResult]:
        return list(self.saved.values())

    async def save_records(self, results: Sequence[RecordResult]) -> None:
        for result in results:
            self.saved.setdefault(result.index, result)

    async def remember_nmp_job(self, nmp_job_id: str) -> None:
        self.nmp_jobs.append(nmp_job_id)
        self.job = self.job.model_copy(update={"nmp_job_id": nmp_job_id})
