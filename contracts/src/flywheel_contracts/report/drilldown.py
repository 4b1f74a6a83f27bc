"""What the recommended candidate answered, record by record, next to what production answered:
the evidence behind a recommendation. The evaluator serves it (`GET /runs/{run}/records`, from
its per-record detail); the report shows it for the recommended candidate."""

from html import escape
from uuid import UUID

import httpx
from pydantic import BaseModel, ConfigDict, Field

from flywheel_contracts.events import RunCompleted
from flywheel_contracts.run_config import EvalType

RECORDS_PATH = "/runs/{run_id}/records"
DEFAULT_RECORDS = 20


class RecordDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    prompt: str = Field(description="The record's last user message.")
    production_answer: str = Field(description="The logged answer: text and tool calls.")
    candidate_answer: str | None = Field(description="None when the request failed.")
    scores: dict[str, float | None] = Field(default_factory=dict)
    verdict: str = Field(description="What the scores say, in a few words.")
    icl_example_ids: list[str] | None = None
    dialect: str | None = Field(
        default=None,
        description="Tool calling: where the calls were (`tool_calls`, `content_json`, `none`, "
        "`malformed`); what separates the strict scores from the lenient ones.",
    )


class Drilldown(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: UUID
    candidate_model: str
    eval_type: EvalType
    records: list[RecordDetail]
    total: int = Field(description="Records the evaluation scored; `records` may show fewer.")


def fetch_drilldown(
    evaluator_url: str,
    run_id: UUID,
    candidate_model: str,
    eval_type: EvalType,
    *,
    limit: int = DEFAULT_RECORDS,
    transport: httpx.BaseTransport | None = None,
) -> Drilldown | None:
    """The evaluator's per-record detail of one evaluation; None when it has none."""
    params: dict[str, str | int] = {
        "candidate": candidate_model,
        "eval_type": eval_type.value,
        "limit": limit,
    }
    with httpx.Client(base_url=evaluator_url, timeout=10.0, transport=transport) as client:
        response = client.get(RECORDS_PATH.format(run_id=run_id), params=params)
    if response.status_code == httpx.codes.NOT_FOUND:
        return None
    response.raise_for_status()
    return Drilldown.model_validate_json(response.content)


def recommended_drilldown(
    evaluator_url: str,
    run_id: UUID,
    completed: RunCompleted,
    *,
    limit: int = DEFAULT_RECORDS,
    transport: httpx.BaseTransport | None = None,
) -> Drilldown | None:
    """The drill-down of the run's recommended candidate; None without a recommendation."""
    pick = completed.leaderboard.recommendation
    if pick.candidate_model is None or pick.eval_type is None:
        return None
    return fetch_drilldown(
        evaluator_url,
        run_id,
        pick.candidate_model,
        pick.eval_type,
        limit=limit,
        transport=transport,
    )


def drilldown_section(drilldown: Drilldown) -> str:
    """The HTML section (every text escaped)."""
    rows = "".join(
        "<tr>"
        f"<td>{record.index}</td>"
        f"<td>{_cell(record.prompt)}</td>"
        f"<td>{_cell(record.production_answer)}</td>"
        f"<td>{_cell(record.candidate_answer or '(no answer)')}</td>"
        f"<td>{escape(record.verdict)}</td>"
        "</tr>"
        for record in drilldown.records
    )
    shown = len(drilldown.records)
    return (
        f"<h2>What {escape(drilldown.candidate_model)} ({escape(drilldown.eval_type.value)}) "
        "answered</h2>"
        f"<p class=sub>{shown} of {drilldown.total} evaluation records, next to the answer the "
        "production model logged.</p>"
        "<table class=drill><thead><tr><th>#</th><th>Prompt</th><th>Production answer</th>"
        f"<th>Candidate answer</th><th>Verdict</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _cell(text: str, limit: int = 600) -> str:
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"<pre>{escape(shown)}</pre>"
