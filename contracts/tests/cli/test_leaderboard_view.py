"""The terminal leaderboard: the decision's headline on top, production's reference row, the
savings and ratios per candidate, and why the others fell short."""

import io
from typing import Any
from uuid import uuid4

import pytest
from rich.console import Console

from flywheel_contracts import events as ev
from flywheel_contracts.cli.render import leaderboard_view
from flywheel_contracts.examples import EXAMPLES
from flywheel_contracts.run_config import EvalType

pytestmark = pytest.mark.unit

_SMALL = "meta/llama-3.2-1b-instruct"


def _completed(**board_changes: Any) -> ev.RunCompleted:
    completed = EXAMPLES["run.completed"].payload
    assert isinstance(completed, ev.RunCompleted)
    board = completed.leaderboard.model_copy(update=board_changes)
    return completed.model_copy(update={"leaderboard": board})


def _text(completed: ev.RunCompleted) -> str:
    out = io.StringIO()
    Console(file=out, width=220, color_system=None).print(leaderboard_view(uuid4(), completed))
    return out.getvalue()


def _row(text: str, first_cell: str) -> str:
    [row] = [line for line in text.splitlines() if line.strip().startswith(first_cell)]
    return row


def test_the_headline_comes_first_then_the_pick() -> None:
    completed = _completed()
    headline = completed.leaderboard.recommendation.reason

    lines = _text(completed).splitlines()

    assert lines[0].startswith("Switch customer-service-router from meta/llama-3.3-70b-instruct")
    # The whole sentence, whatever the wrapping, before anything else.
    assert " ".join(line.strip() for line in lines[:3]).startswith(headline)
    [pick] = [i for i, line in enumerate(lines) if line.startswith("Recommended:")]
    [table] = [i for i, line in enumerate(lines) if "candidate" in line and "eval" in line]
    assert pick < table
    assert lines[pick] == f"Recommended: {_SMALL} (base)"


def test_the_production_row_is_the_reference_with_its_cost() -> None:
    text = _text(_completed())

    row = _row(text, "meta/llama-3.3-70b-instruct")
    assert row.split()[:2] == ["meta/llama-3.3-70b-instruct", "production"]
    assert "1210 / 2150" in row  # latency p50 / p95 from the logs
    assert " 682 " in row  # tokens per request: 610 prompt + 72 completion
    assert "0.6000" in row  # $ per 1,000 requests
    assert "10 requests a day" in text
    assert "$180.00 a month" in text
    assert "$0.00088 per 1k tokens" in text


def test_an_unknown_production_price_reads_unknown_never_zero() -> None:
    production = EXAMPLES["run.completed"].payload.leaderboard.production
    unpriced = production.model_copy(
        update=dict.fromkeys(
            ("price_per_1k_tokens", "cost_per_1k_requests_usd", "monthly_cost_usd")
        )
    )
    entries = tuple(
        e.model_copy(update={"cost_ratio": None, "monthly_saving_usd": None})
        for e in EXAMPLES["run.completed"].payload.leaderboard.entries
    )

    text = _text(_completed(production=unpriced, entries=entries))

    row = _row(text, "meta/llama-3.3-70b-instruct")
    assert row.split()[-1] == "unknown"  # $ per 1k requests, the last filled column
    assert "0.0000" not in row
    assert "$0.00" not in text
    assert "unknown per 1,000 requests, unknown a month (30 days) at unknown per 1k tokens" in text
    candidate = _row(text, _SMALL)
    assert candidate.split()[4:6] == ["unknown", "unknown"]  # cost ratio, monthly saving


def test_a_candidate_dearer_than_production_shows_a_cost_increase() -> None:
    board = EXAMPLES["run.completed"].payload.leaderboard
    dearer = board.entries[0].model_copy(update={"monthly_saving_usd": -12.5, "cost_ratio": 1.07})

    text = _text(_completed(entries=(dearer, *board.entries[1:])))

    row = _row(text, _SMALL)
    assert "-$12.50" in row
    assert "+$" not in row and "$12.50 " not in row.replace("-$12.50", "")
    assert "1.07x" in row
    assert "negative: costs more" in text


def test_the_candidates_savings_and_ratios_are_next_to_their_scores() -> None:
    row = _row(_text(_completed()), _SMALL)

    cells = row.split()
    assert cells[:4] == [_SMALL, "base", "0.90", "0.75"]
    assert cells[4:7] == ["0.11x", "+$160.20", "0.19x"]


def test_the_verdicts_say_why_the_others_fell_short() -> None:
    text = _text(_completed())

    assert "Why not the others:" in text
    assert (
        "meta/llama-3.1-8b-instruct base: not evaluated: deployment failed: insufficient GPUs"
        in text
    )
    # The recommended candidate's own verdict is the headline, not a shortfall.
    assert f"{_SMALL} base: qualified" not in text
    # The failed evaluation is explained once, by its verdict.
    assert text.count("deployment failed: insufficient GPUs") == 1


def test_records_needed_and_no_recommendation() -> None:
    board = EXAMPLES["run.completed"].payload.leaderboard
    keep = board.recommendation.model_copy(
        update={
            "candidate_model": None,
            "eval_type": None,
            "model_id": None,
            "reason": "Keep meta/llama-3.3-70b-instruct: no candidate clears 0.70.",
            "records_needed": 140,
        }
    )

    text = _text(_completed(recommendation=keep))

    assert text.startswith("Keep meta/llama-3.3-70b-instruct: no candidate clears 0.70.")
    assert "No recommendation." in text
    assert "Verdicts:" in text and "Why not the others" not in text
    assert "about 140 evaluation records" in text


def test_a_customized_pick_names_the_model_id_to_promote() -> None:
    board = EXAMPLES["run.completed"].payload.leaderboard
    adapter = "dfwbp/customized-llama@cust-1"
    pick = board.recommendation.model_copy(
        update={"eval_type": EvalType.CUSTOMIZED, "model_id": adapter, "base_model": _SMALL}
    )

    text = _text(_completed(recommendation=pick))

    assert f"Recommended: {_SMALL} (customized), promote {adapter} (base {_SMALL})" in text


def test_a_leaderboard_without_production_has_no_reference_row() -> None:
    text = _text(_completed(production=None))

    assert "production" not in text.lower().replace("candidate over production", "")
    assert _row(text, _SMALL).split()[4:7] == ["0.11x", "+$160.20", "0.19x"]
