"""The recommended candidate's answers, record by record: fetched from the evaluator, shown in
the report next to production's."""

from uuid import uuid4

import httpx
import pytest

from flywheel_contracts.cli import render
from flywheel_contracts.events import RunCompleted
from flywheel_contracts.examples import EXAMPLES
from flywheel_contracts.report.drilldown import (
    Drilldown,
    RecordDetail,
    drilldown_section,
    fetch_drilldown,
    recommended_drilldown,
)
from flywheel_contracts.run_config import EvalType

pytestmark = pytest.mark.unit

RUN = uuid4()
DRILL = Drilldown(
    run_id=RUN,
    candidate_model="meta/llama-3.2-1b-instruct",
    eval_type=EvalType.CUSTOMIZED,
    records=[
        RecordDetail(
            index=3,
            prompt="Where is order <b>42</b>?",
            production_answer='{"name": "track_order"}',
            candidate_answer=None,
            scores={"function_name_accuracy": None},
            verdict="request failed: timeout",
        )
    ],
    total=100,
)


def test_the_section_shows_each_record_next_to_productions_answer_escaped() -> None:
    html = drilldown_section(DRILL)
    assert "What meta/llama-3.2-1b-instruct (customized) answered" in html
    assert "1 of 100 evaluation records" in html
    assert "Where is order &lt;b&gt;42&lt;/b&gt;?" in html and "<b>42" not in html
    assert "(no answer)" in html and "request failed: timeout" in html


def test_the_drilldown_is_read_from_the_evaluator_and_absent_as_none() -> None:
    asked: list[httpx.Request] = []

    def evaluator(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if request.url.params["candidate"] == "unknown/model":
            return httpx.Response(404, json={"detail": "no evaluation"})
        return httpx.Response(200, content=DRILL.model_dump_json())

    transport = httpx.MockTransport(evaluator)
    got = fetch_drilldown(
        "http://evaluator", RUN, DRILL.candidate_model, EvalType.CUSTOMIZED, transport=transport
    )
    assert got == DRILL
    assert asked[0].url.path == f"/runs/{RUN}/records"
    assert asked[0].url.params["eval_type"] == "customized"
    missing = fetch_drilldown(
        "http://evaluator", RUN, "unknown/model", EvalType.BASE, transport=transport
    )
    assert missing is None


def test_only_a_recommended_candidate_is_drilled_into() -> None:
    completed: RunCompleted = EXAMPLES["run.completed"].payload
    board = completed.leaderboard
    nobody = board.recommendation.model_copy(update={"candidate_model": None, "eval_type": None})
    unrecommended = completed.model_copy(
        update={"leaderboard": board.model_copy(update={"recommendation": nobody})}
    )

    def refuse(_: httpx.Request) -> httpx.Response:
        raise AssertionError("the evaluator must not be asked")

    transport = httpx.MockTransport(refuse)
    assert recommended_drilldown("http://e", RUN, unrecommended, transport=transport) is None


def test_the_terminal_shows_the_first_answers_next_to_productions() -> None:
    console = render.console()
    with console.capture() as captured:
        console.print(render.drilldown_view(DRILL))
    text = captured.get()
    assert "What meta/llama-3.2-1b-instruct (customized) answered (1 of 100 records)" in text
    assert "Where is order <b>42</b>?" in text and "(no answer)" in text
