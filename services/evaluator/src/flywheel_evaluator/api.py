"""The evaluator's HTTP view of its per-record detail: what a candidate answered to each
evaluation record next to what production answered, for the report's drill-down.

Each record also says, as `dialect`, where a tool-calling answer put its calls (`tool_calls`,
`content_json`, `none`, `malformed`; null for a failed request or a generic workload): a field
beside the drill-down contract's, which its readers ignore until it has one; the verdict
mentions any dialect other than `tool_calls`, so the report shows it already.
"""

from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, HTTPException, Query

from flywheel_contracts.report.drilldown import RECORDS_PATH, Drilldown, RecordDetail
from flywheel_contracts.run_config import EvalType
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.dataset import EvalItem
from flywheel_evaluator.dialects import Dialect
from flywheel_evaluator.models import RecordResult, evaluation_id
from flywheel_evaluator.repository import EvaluationRepository


def records_router(repository: EvaluationRepository, datasets: DatasetFiles) -> APIRouter:
    router = APIRouter(tags=["records"])

    @router.get(RECORDS_PATH)
    async def records(
        run_id: UUID,
        candidate: str,
        eval_type: EvalType,
        limit: int = Query(20, ge=1, le=1000),
    ) -> dict[str, Any]:
        job = await repository.get(evaluation_id(run_id, candidate, eval_type))
        if job is None:
            raise HTTPException(404, f"no {eval_type.value} evaluation of {candidate} in {run_id}")
        results = sorted(await repository.load_records(job.id), key=lambda r: r.index)
        items = {item.index: item for item in await datasets.items(job.dataset, job.limit)}
        shown = [result for result in results[:limit] if result.index in items]
        drilldown = Drilldown(
            run_id=run_id,
            candidate_model=candidate,
            eval_type=eval_type,
            records=[_detail(result, items[result.index]) for result in shown],
            total=len(results),
        )
        body = drilldown.model_dump(mode="json")
        for record, result in zip(body["records"], shown, strict=True):
            record["dialect"] = result.dialect.value if result.dialect else None
        return body

    return router


def _detail(result: RecordResult, item: EvalItem) -> RecordDetail:
    return RecordDetail(
        index=result.index,
        prompt=_last_user_message(item.messages),
        production_answer=_message_text(item.reference),
        candidate_answer=_message_text(result.prediction) if result.prediction else None,
        scores=result.scores,
        verdict=_verdict(result),
        icl_example_ids=result.icl_example_ids,
    )


def _last_user_message(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content(message.get("content"))
    return ""


def _content(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _message_text(message: dict[str, Any]) -> str:
    text = _content(message.get("content"))
    calls = message.get("tool_calls")
    if calls:
        rendered = orjson.dumps(calls, option=orjson.OPT_INDENT_2).decode()
        return f"{text}\n{rendered}".strip()
    return text


def _verdict(result: RecordResult) -> str:
    if not result.ok:
        return f"request failed: {result.error or 'no answer'}"
    scored = [f"{name} {value:g}" for name, value in result.scores.items() if value is not None]
    verdict = ", ".join(scored) if scored else f"not scored: {result.judge_error or 'no score'}"
    if result.dialect is not None and result.dialect is not Dialect.TOOL_CALLS:
        verdict += f" (calls: {result.dialect.value})"
    return verdict
