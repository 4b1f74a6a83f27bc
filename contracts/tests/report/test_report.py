"""The HTML report: its charts show the run's data, its timeline the run's stages in order, and
no text of an event can break out of the page."""

import random
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest

from flywheel_contracts import events as ev
from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.report import build_report, svg, tell
from flywheel_contracts.report.charts import SCORE_PLOT_HEIGHT, clock
from flywheel_contracts.report.sample import CANDIDATES, METRICS, sample_run
from flywheel_contracts.run_config import EvalType

pytestmark = pytest.mark.unit

_SVG = "{http://www.w3.org/2000/svg}"


def _charts(page: str, css_class: str) -> list[ET.Element]:
    """The page's SVG charts of one kind, parsed (our SVG is well-formed XML)."""
    found = [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, flags=re.S)]
    return [svg for svg in found if css_class in svg.get("class", "").split()]


def _marks(chart: ET.Element, css_class: str) -> list[ET.Element]:
    return [g for g in chart.iter(f"{_SVG}g") if css_class in g.get("class", "").split()]


def _leaderboard(events: list[Envelope[Any]]) -> ev.Leaderboard:
    [completed] = [e.payload for e in events if isinstance(e.payload, ev.RunCompleted)]
    return completed.leaderboard


def _with_entry_failed(events: list[Envelope[Any]], model: str, eval_type: EvalType) -> None:
    """Turn one leaderboard entry into a failed evaluation, in place."""
    for i, envelope in enumerate(events):
        if isinstance(envelope.payload, ev.RunCompleted):
            board = envelope.payload.leaderboard
            entries = tuple(
                ev.LeaderboardEntry(
                    candidate_model=model, eval_type=eval_type, error="evaluation job failed"
                )
                if (e.candidate_model, e.eval_type) == (model, eval_type)
                else e
                for e in board.entries
            )
            payload = envelope.payload.model_copy(
                update={"leaderboard": board.model_copy(update={"entries": entries})}
            )
            events[i] = envelope.model_copy(update={"payload": payload})


@pytest.mark.parametrize("metric", METRICS)
def test_bars_and_whiskers_are_the_scores_and_their_intervals(metric: str) -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    page = build_report(run_id, events)
    board = _leaderboard(events)

    [chart] = [c for c in _charts(page, "scores") if metric in c.get("aria-label", "")]
    bars = _marks(chart, "bar")
    assert len(bars) == len(board.entries)
    for bar in bars:
        [entry] = [
            e
            for e in board.entries
            if (e.candidate_model, str(e.eval_type))
            == (bar.get("data-candidate"), bar.get("data-eval-type"))
        ]
        [score] = [s for s in entry.scores if s.name == metric]
        rect = bar.find(f"{_SVG}rect")
        assert rect is not None
        baseline = float(rect.get("y", "")) + float(rect.get("height", ""))
        assert float(rect.get("height", "")) == pytest.approx(
            score.value * SCORE_PLOT_HEIGHT, abs=0.02
        )
        [whisker] = _marks(bar, "ci")
        ys = sorted(float(line.get("y1", "")) for line in whisker.iter(f"{_SVG}line"))
        assert ys[0] == pytest.approx(baseline - score.ci_high * SCORE_PLOT_HEIGHT, abs=0.02)
        assert ys[-1] == pytest.approx(baseline - score.ci_low * SCORE_PLOT_HEIGHT, abs=0.02)


def test_a_failed_evaluation_is_a_cross_not_a_bar_and_not_a_point() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    model = CANDIDATES[1].model_name
    _with_entry_failed(events, model, EvalType.ICL)
    page = build_report(run_id, events)

    scores = _charts(page, "scores")[0]
    [missing] = _marks(scores, "missing")
    assert (missing.get("data-candidate"), missing.get("data-eval-type")) == (model, "icl")
    assert "evaluation job failed" in "".join(missing.itertext())
    assert len(_marks(scores, "bar")) == len(_leaderboard(events).entries) - 1
    points = _marks(_charts(page, "cost")[0], "point")
    assert (model, "icl") not in {
        (p.get("data-candidate"), p.get("data-eval-type")) for p in points
    }


def test_cost_chart_has_one_point_per_scored_evaluation_placed_by_cost_and_score() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    page = build_report(run_id, events)
    board = _leaderboard(events)

    for chart, metric in zip(_charts(page, "cost"), METRICS, strict=True):
        points = _marks(chart, "point")
        assert sorted((p.get("data-candidate"), p.get("data-eval-type")) for p in points) == sorted(
            (e.candidate_model, str(e.eval_type)) for e in board.entries
        )
        # Further right costs more, higher up scores better.
        by_cost = sorted(points, key=lambda p: float(p.get("data-cost", "")))
        xs = [_centre(p)[0] for p in by_cost]
        assert xs == sorted(xs)
        assert len(set(xs)) > 1
        by_score = sorted(points, key=lambda p: float(p.get("data-value", "")))
        ys = [_centre(p)[1] for p in by_score]
        assert ys == sorted(ys, reverse=True)
        for point in points:
            [entry] = [
                e
                for e in board.entries
                if (e.candidate_model, str(e.eval_type))
                == (point.get("data-candidate"), point.get("data-eval-type"))
            ]
            assert float(point.get("data-cost", "")) == pytest.approx(
                entry.cost_per_1k_requests_usd
            )
            [score] = [s for s in entry.scores if s.name == metric]
            assert float(point.get("data-value", "")) == pytest.approx(score.value, abs=1e-4)
            # The marker sits within its whisker where the score lies within its interval.
            [whisker] = _marks(point, "ci")
            ys = sorted(float(line.get("y1", "")) for line in whisker.iter(f"{_SVG}line"))
            share = (_centre(point)[1] - ys[0]) / (ys[-1] - ys[0])
            expected = (score.ci_high - score.value) / (score.ci_high - score.ci_low)
            assert share == pytest.approx(expected, abs=0.02)


def _centre(point: ET.Element) -> tuple[float, float]:
    [marker] = [m for m in point if m.get("class") == "marker"]
    if marker.tag == f"{_SVG}circle":
        return float(marker.get("cx", "")), float(marker.get("cy", ""))
    if marker.tag == f"{_SVG}rect":
        half = float(marker.get("width", "")) / 2
        return float(marker.get("x", "")) + half, float(marker.get("y", "")) + half
    corners = [tuple(map(float, c.split(","))) for c in marker.get("points", "").split()]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2


def _lanes(page: str) -> list[ET.Element]:
    [timeline] = _charts(page, "timeline")
    return _marks(timeline, "lane")


def _seconds(events: list[Envelope[Any]], at: datetime) -> float:
    return (at - min(e.occurred_at for e in events)).total_seconds()


def test_timeline_lanes_follow_the_stages_in_order_and_at_their_times() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    page = build_report(run_id, events)

    lanes = _lanes(page)
    small, middle, large = (c.model_name for c in CANDIDATES)
    assert [lane.get("data-lane") for lane in lanes] == [
        "datasets",
        f"{small} deployment",
        f"{small} training",
        f"{small} eval base",
        f"{small} eval icl",
        f"{small} eval customized",
        f"{middle} deployment",
        f"{middle} eval base",
        f"{middle} eval icl",
        f"{large} deployment",
        f"{large} eval base",
        f"{large} eval icl",
    ]
    # Each lane's segments as [start, end, start, end, ...] in seconds since the request.
    spans = {
        lane.get("data-lane"): [
            float(s.get(edge, ""))
            for s in _marks(lane, "segment")
            for edge in ("data-start", "data-end")
        ]
        for lane in lanes
    }
    [ready] = [e for e in events if isinstance(e.payload, ev.DatasetReady)]
    assert spans["datasets"] == pytest.approx([0.0, _seconds(events, ready.occurred_at)])
    [started] = [
        e
        for e in events
        if isinstance(e.payload, ev.EvalStarted)
        and e.payload.candidate_model == middle
        and e.payload.eval_type is EvalType.ICL
    ]
    [done] = [
        e
        for e in events
        if isinstance(e.payload, ev.EvalDone)
        and e.payload.candidate_model == middle
        and e.payload.eval_type is EvalType.ICL
    ]
    assert spans[f"{middle} eval icl"] == pytest.approx(
        [_seconds(events, started.occurred_at), _seconds(events, done.occurred_at)]
    )
    # The deployment: requested (nim.down's duration back from its removal), serving from
    # nim.up to nim.down.
    [up] = [
        e
        for e in events
        if isinstance(e.payload, ev.NimUp) and e.payload.candidate.model_name == large
    ]
    [down] = [
        e
        for e in events
        if isinstance(e.payload, ev.NimDown) and e.payload.candidate_model == large
    ]
    assert isinstance(down.payload, ev.NimDown)
    removed = _seconds(events, down.occurred_at)
    serving = _seconds(events, up.occurred_at)
    assert spans[f"{large} deployment"] == pytest.approx(
        [removed - down.payload.deployment_seconds, serving, serving, removed]
    )


def test_the_report_does_not_depend_on_the_order_or_redelivery_of_events() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    shuffled = [*events, *events[:5]]
    random.Random(7).shuffle(shuffled)

    assert build_report(run_id, shuffled) == build_report(run_id, events)


def test_other_runs_events_are_left_out() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    other = sample_run(uuid4(), workload_id="someone-elses-workload")

    page = build_report(run_id, [*other, *events])

    assert "someone-elses-workload" not in page
    assert page == build_report(run_id, events)
    with pytest.raises(ValueError, match="no event of run"):
        build_report(uuid4(), events)


def test_an_unfinished_run_shows_its_stages_so_far() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    [first_eval_done] = [e for e in events if isinstance(e.payload, ev.EvalDone)][:1]
    so_far = [e for e in events if e.occurred_at < first_eval_done.occurred_at]

    page = build_report(run_id, so_far)

    assert "The run has not finished." in page
    assert "Leaderboard" not in page
    unfinished = {
        lane.get("data-lane")
        for lane in _lanes(page)
        if any("unfinished" in s.get("class", "") for s in _marks(lane, "segment"))
    }
    small = CANDIDATES[0].model_name
    assert {f"{small} eval base", f"{small} training", f"{small} deployment"} <= unfinished
    assert "datasets" not in unfinished


def test_a_failed_run_says_why_and_marks_the_failed_deployment() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    [requested, ready] = events[:2]
    large = CANDIDATES[2].model_name
    failed = new_event(
        ev.NimFailed(
            candidate_model=large,
            deployment_name="llama-8b",
            reason=ev.NimFailureReason.INSUFFICIENT_GPUS,
            message="needs 1 GPU, none free",
        ),
        producer="nim-manager",
        run_id=run_id,
        cause=ready,
    )
    ended = new_event(
        ev.RunFailed(
            reason=ev.RunFailureReason.NO_CANDIDATE_DEPLOYED,
            message="no candidate could be deployed",
            stage="deployment",
        ),
        producer="nim-manager",
        run_id=run_id,
        cause=failed,
    )

    page = build_report(run_id, [requested, ready, failed, ended])

    assert "Failed at deployment (no_candidate_deployed): no candidate could be deployed" in page
    [lane] = [lane for lane in _lanes(page) if lane.get("data-lane") == f"{large} deployment"]
    [segment] = _marks(lane, "segment")
    assert "failed" in segment.get("class", "").split()
    assert "insufficient_gpus" in "".join(segment.itertext())


def test_every_text_from_the_events_is_escaped() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    hostile = "<script>alert('x')</script> & \"quoted\""
    events[0] = events[0].model_copy(
        update={"payload": events[0].payload.model_copy(update={"requested_by": hostile})}
    )
    _with_entry_failed(events, CANDIDATES[0].model_name, EvalType.BASE)
    for i, envelope in enumerate(events):
        if isinstance(envelope.payload, ev.RunCompleted):
            board = envelope.payload.leaderboard
            entries = tuple(
                e.model_copy(update={"error": hostile}) if e.error else e for e in board.entries
            )
            recommendation = board.recommendation.model_copy(update={"reason": hostile})
            board = board.model_copy(update={"entries": entries, "recommendation": recommendation})
            payload = envelope.payload.model_copy(update={"leaderboard": board})
            events[i] = envelope.model_copy(update={"payload": payload})

    page = build_report(run_id, events)

    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    # Both the leaderboard and the chart's tooltip carry the error, escaped, and the SVG parses.
    assert page.count("&lt;script&gt;") >= 4
    assert _charts(page, "scores")


def test_the_page_is_self_contained() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    page = build_report(run_id, events)

    assert page.startswith("<!DOCTYPE html>")
    for outside in ("<script", "<link", " src=", " href=", "url(", "@import"):
        assert outside not in page


def test_story_keeps_the_configured_candidate_order_whoever_reports_first() -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    large = CANDIDATES[2].model_name
    # The largest candidate's deployment is reported before the datasets (clock skew).
    [up] = [
        e
        for e in events
        if isinstance(e.payload, ev.NimUp) and e.payload.candidate.model_name == large
    ]
    early = up.model_copy(update={"occurred_at": events[0].occurred_at})
    events = [early if e is up else e for e in events]

    story = tell(run_id, events)

    deployments = [lane.label for lane in story.lanes if lane.label.endswith(" deployment")]
    assert deployments == [f"{c.model_name} deployment" for c in CANDIDATES]


@pytest.mark.parametrize(
    ("high", "expected"),
    [
        (1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.43, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
        (37.0, [0.0, 10.0, 20.0, 30.0, 40.0]),
        (0.0, [0.0, 1.0]),
    ],
)
def test_axis_ticks_are_round_and_cover_the_data(high: float, expected: list[float]) -> None:
    assert svg.nice_ticks(high) == pytest.approx(expected)


def test_svg_text_and_attributes_are_escaped() -> None:
    mark = svg.element("g", {"data_x": '"><b>'}, svg.text("<i>&", {"class_": "a"}))

    assert mark == '<g data-x="&quot;&gt;&lt;b&gt;"><text class="a">&lt;i&gt;&amp;</text></g>'


@pytest.mark.parametrize(
    ("seconds", "label"), [(0.0, "0s"), (0.2, "0.2s"), (1.5, "1.5s"), (42.4, "42s"), (125, "2:05")]
)
def test_timeline_ticks_keep_their_tenths_on_short_runs(seconds: float, label: str) -> None:
    assert clock(seconds) == label
