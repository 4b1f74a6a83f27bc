"""The HTML report's answer: the decision's headline first, production's reference row in the
leaderboard, and a bar per candidate and evaluation type for what it saves a month."""

import re
import xml.etree.ElementTree as ET
from html import escape
from typing import Any
from uuid import UUID, uuid4

import pytest

from flywheel_contracts import events as ev
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.report import build_report
from flywheel_contracts.report.charts import COST_INCREASE_COLOR, SAVING_COLOR
from flywheel_contracts.report.sample import CANDIDATES, PRODUCTION_MODEL, sample_run
from flywheel_contracts.run_config import EvalType

pytestmark = pytest.mark.unit

_SVG = "{http://www.w3.org/2000/svg}"


def _board(events: list[Envelope[Any]]) -> ev.Leaderboard:
    [completed] = [e.payload for e in events if isinstance(e.payload, ev.RunCompleted)]
    return completed.leaderboard


def _with_board(events: list[Envelope[Any]], **changes: Any) -> list[Envelope[Any]]:
    changed = []
    for envelope in events:
        if isinstance(envelope.payload, ev.RunCompleted):
            board = envelope.payload.leaderboard.model_copy(update=changes)
            payload = envelope.payload.model_copy(update={"leaderboard": board})
            envelope = envelope.model_copy(update={"payload": payload})
        changed.append(envelope)
    return changed


def _page(events: list[Envelope[Any]], run_id: UUID) -> str:
    return build_report(run_id, events)


def _savings(page: str) -> ET.Element:
    charts = [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, flags=re.S)]
    [chart] = [c for c in charts if "savings" in c.get("class", "").split()]
    return chart


def _bars(chart: ET.Element) -> list[ET.Element]:
    return [g for g in chart.iter(f"{_SVG}g") if "saving" in g.get("class", "").split()]


def _rows(page: str) -> list[str]:
    [table] = re.findall(r"<table class=leaderboard>.*?</table>", page, flags=re.S)
    return re.findall(r"<tr.*?</tr>", table, flags=re.S)


def test_the_headline_is_the_first_thing_the_page_says() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    reason = _board(events).recommendation.reason

    page = _page(events, run_id)

    assert reason.startswith(f"Switch customer-service-router from {PRODUCTION_MODEL} to ")
    headline = f"<p class=headline>{escape(reason)}</p>"
    assert headline in page
    assert page.index(headline) < page.index("<h2>")
    assert "promote dfwbp/customized-" in page  # the customized pick's own model id


def test_the_headline_is_escaped() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    hostile = "Switch to <b onmouseover='x'>evil</b> & save"
    pick = _board(events).recommendation.model_copy(update={"reason": hostile})

    page = _page(_with_board(events, recommendation=pick), run_id)

    assert "<b onmouseover" not in page
    assert (
        "<p class=headline>Switch to &lt;b onmouseover=&#x27;x&#x27;&gt;evil&lt;/b&gt; &amp; save"
        "</p>" in page
    )


def test_the_leaderboard_starts_with_production_as_its_reference_row() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    production = _board(events).production
    assert production is not None

    rows = _rows(_page(events, run_id))

    assert len(rows) == 1 + 1 + len(_board(events).entries)  # header, production, entries
    reference = rows[1]
    assert reference.startswith("<tr class=production>")
    assert f"<td class=name>{PRODUCTION_MODEL}</td><td class=name>production</td>" in reference
    assert "1250 / 2600" in reference  # latency p50 / p95 from the logs
    assert "<td>1745</td>" in reference  # tokens per request
    assert f"<td>{production.cost_per_1k_requests_usd:.4f}</td>" in reference
    assert f"costs ${production.monthly_cost_usd:,.2f} a month" in reference
    page = _page(events, run_id)
    assert "2,027 requests a day" in page


def test_an_unknown_production_price_reads_unknown() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    board = _board(events)
    assert board.production is not None
    unpriced = board.production.model_copy(
        update=dict.fromkeys(
            ("price_per_1k_tokens", "cost_per_1k_requests_usd", "monthly_cost_usd")
        )
    )
    entries = tuple(
        e.model_copy(update={"cost_ratio": None, "monthly_saving_usd": None}) for e in board.entries
    )

    page = _page(_with_board(events, production=unpriced, entries=entries), run_id)

    reference = _rows(page)[1]
    assert reference.count("<td>unknown</td>") == 2  # cost ratio and $ per 1k requests
    assert "cost unknown" in reference
    assert "0.0000" not in reference and "$0.00" not in reference
    assert "unknown per 1,000 requests, unknown a month (30 days) at unknown per 1k tokens" in page
    # Every bar of the savings chart is "unknown", none drawn as a 0 bar.
    bars = _bars(_savings(page))
    assert len(bars) == len(entries)
    assert all("unknown" in bar.get("class", "").split() for bar in bars)
    assert not [bar for bar in bars if bar.find(f"{_SVG}rect") is not None]


def test_one_savings_bar_per_evaluation_right_of_zero_when_it_saves() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    board = _board(events)

    chart = _savings(_page(events, run_id))

    bars = _bars(chart)
    assert [(b.get("data-candidate"), b.get("data-eval-type")) for b in bars] == [
        (e.candidate_model, str(e.eval_type)) for e in board.entries
    ]
    zero = _zero(chart)
    widths = []
    for bar, entry in zip(bars, board.entries, strict=True):
        assert entry.monthly_saving_usd is not None and entry.monthly_saving_usd > 0
        assert float(bar.get("data-saving", "")) == pytest.approx(entry.monthly_saving_usd)
        rect = bar.find(f"{_SVG}rect")
        assert rect is not None
        assert rect.get("fill") == SAVING_COLOR
        assert float(rect.get("x", "")) == pytest.approx(zero, abs=0.01)
        widths.append(float(rect.get("width", "")))
    # Wider is more saved.
    savings = [e.monthly_saving_usd or 0.0 for e in board.entries]
    assert sorted(range(len(bars)), key=widths.__getitem__) == sorted(
        range(len(bars)), key=savings.__getitem__
    )
    # The recommendation is starred, production's whole cost is the dashed ceiling.
    small = CANDIDATES[0].model_name
    labels = [t.text or "" for t in chart.iter(f"{_SVG}text") if t.get("class") == "bar-label"]
    assert [label for label in labels if label.endswith("\u2605")] == [f"{small} customized \u2605"]
    [ceiling] = [g for g in chart.iter(f"{_SVG}g") if g.get("class") == "ceiling"]
    assert board.production is not None
    assert float(ceiling.get("data-cost", "")) == pytest.approx(board.production.monthly_cost_usd)


def test_a_dearer_candidate_is_a_bar_left_of_zero() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    board = _board(events)
    dearer = board.entries[0].model_copy(update={"monthly_saving_usd": -40.0})
    unknown = board.entries[1].model_copy(update={"monthly_saving_usd": None})

    page = _page(_with_board(events, entries=(dearer, unknown, *board.entries[2:])), run_id)

    chart = _savings(page)
    bars = _bars(chart)
    rect = bars[0].find(f"{_SVG}rect")
    assert rect is not None
    assert rect.get("fill") == COST_INCREASE_COLOR
    zero = _zero(chart)
    assert float(rect.get("x", "")) + float(rect.get("width", "")) == pytest.approx(zero, abs=0.01)
    assert "-$40.00" in "".join(bars[0].itertext())
    assert "costs $40.00 more a month" in "".join(bars[0].itertext())
    assert "unknown" in bars[1].get("class", "").split()
    assert bars[1].find(f"{_SVG}rect") is None
    assert "<td class=dearer>-$40.00</td>" in _rows(page)[2]


def test_the_verdicts_say_why_the_others_fell_short() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    board = _board(events)

    page = _page(events, run_id)

    [listing] = re.findall(r"<ul class=verdicts>.*?</ul>", page, flags=re.S)
    items = re.findall(r"<li>.*?</li>", listing)
    assert len(items) == len(board.entries) - 1
    middle = CANDIDATES[1].model_name
    assert f"<span class=name>{middle} base</span>: below threshold: 0.40" in listing
    assert f"{CANDIDATES[0].model_name} customized" not in listing


def test_a_leaderboard_without_production_still_renders() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    entries = tuple(
        e.model_copy(update={"cost_ratio": None, "monthly_saving_usd": None})
        for e in _board(events).entries
    )

    page = _page(_with_board(events, production=None, entries=entries), run_id)

    assert "<tr class=production>" not in page
    assert not [g for g in _savings(page).iter(f"{_SVG}g") if g.get("class") == "ceiling"]


def _zero(chart: ET.Element) -> float:
    """The x of the zero line: the axis-coloured vertical line."""
    [line] = [
        line
        for line in chart.iter(f"{_SVG}line")
        if line.get("stroke") == "#555" and line.get("stroke-dasharray") is None
    ]
    return float(line.get("x1", ""))


def test_the_recommended_row_is_still_marked() -> None:
    run_id = uuid4()
    events = sample_run(run_id)

    rows = _rows(_page(events, run_id))

    [marked] = [row for row in rows if row.startswith("<tr class=recommended>")]
    small = CANDIDATES[0].model_name
    assert f"<td class=name>{small}</td><td class=name>{EvalType.CUSTOMIZED}</td>" in marked
