"""The report's charts as inline SVG: scores with their confidence intervals, estimated cost
against accuracy, the monthly saving against production, and the run's timeline.

Every mark carries `data-*` attributes naming what it shows, so the tests (and a reader of the
source) can tell which bar is which without measuring pixels.
"""

import math
from collections.abc import Sequence
from datetime import datetime
from html import escape

from flywheel_contracts.events import LeaderboardEntry, MetricScore, ProductionRow
from flywheel_contracts.report import figures, svg
from flywheel_contracts.report.story import Lane, LaneKind, Segment, State
from flywheel_contracts.run_config import EvalType

EVAL_COLORS: dict[EvalType, str] = {
    EvalType.BASE: "#4e79a7",
    EvalType.ICL: "#f28e2b",
    EvalType.CUSTOMIZED: "#59a14f",
}
_LANE_COLORS: dict[LaneKind, str] = {
    LaneKind.DATASETS: "#76b7b2",
    LaneKind.DEPLOYMENT: "#9c755f",
    LaneKind.TRAINING: "#af7aa1",
    LaneKind.EVALUATION: "#4e79a7",
}
SAVING_COLOR = "#1b9e77"
"""A candidate that costs less than production: its saving's bar."""
COST_INCREASE_COLOR = "#d95f02"
"""A candidate that costs more than production."""
_FAILED = "#e15759"
_AXIS = "#555"
_GRID = "#e4e4e4"
_FONT: dict[str, svg.Attr] = {"font_size": 11, "fill": "#333"}


def _score(entry: LeaderboardEntry, metric: str) -> MetricScore | None:
    return next((s for s in entry.scores if s.name == metric), None)


def _describe(entry: LeaderboardEntry, score: MetricScore) -> str:
    failed = f", {score.failed} failed" if score.failed else ""
    return (
        f"{entry.candidate_model} {entry.eval_type}: {score.name} {score.value:.3f} "
        f"(95% CI {score.ci_low:.3f}-{score.ci_high:.3f}, n={score.n}{failed})"
    )


def _eval_types(entries: Sequence[LeaderboardEntry]) -> list[EvalType]:
    present = {entry.eval_type for entry in entries}
    return [eval_type for eval_type in EvalType if eval_type in present]


def _legend(eval_types: Sequence[EvalType], x: float, y: float) -> list[str]:
    marks = []
    for i, eval_type in enumerate(eval_types):
        left = x + i * 100
        marks.append(
            svg.element(
                "rect",
                {"x": left, "y": y - 9, "width": 10, "height": 10, "fill": EVAL_COLORS[eval_type]},
            )
        )
        marks.append(svg.text(str(eval_type), {"x": left + 14, "y": y, **_FONT}))
    return marks


def _whisker(x: float, top: float, bottom: float, score: MetricScore, cap: float) -> str:
    stroke: dict[str, svg.Attr] = {"stroke": "#222", "stroke_width": 1.2}
    return svg.element(
        "g",
        {"class_": "ci", "data_low": f"{score.ci_low:.4f}", "data_high": f"{score.ci_high:.4f}"},
        svg.element("line", {"x1": x, "x2": x, "y1": top, "y2": bottom, **stroke}),
        svg.element("line", {"x1": x - cap, "x2": x + cap, "y1": top, "y2": top, **stroke}),
        svg.element("line", {"x1": x - cap, "x2": x + cap, "y1": bottom, "y2": bottom, **stroke}),
    )


def _y_axis(scale: svg.Scale, left: float, right: float, ticks: Sequence[float]) -> list[str]:
    marks = []
    for tick in ticks:
        y = scale(tick)
        marks.append(
            svg.element("line", {"x1": left, "x2": right, "y1": y, "y2": y, "stroke": _GRID})
        )
        marks.append(
            svg.text(f"{tick:g}", {"x": left - 6, "y": y + 4, "text_anchor": "end", **_FONT})
        )
    return marks


SCORE_PLOT_HEIGHT = 200.0
"""Pixels from a score of 0 to a score of 1 in the score chart."""


def score_chart(entries: Sequence[LeaderboardEntry], metric: str) -> str:
    """Grouped bars: one group per candidate, one bar per evaluation type, 95% CI whiskers.

    An evaluation without this metric's score (it failed) gets a cross on the baseline.
    """
    models = list(dict.fromkeys(entry.candidate_model for entry in entries))
    eval_types = _eval_types(entries)
    left, top, plot_w = 48.0, 34.0, max(300.0, 150.0 * len(models))
    width, height = left + plot_w + 16, top + SCORE_PLOT_HEIGHT + 52
    y = svg.Scale(0.0, 1.0, top + SCORE_PLOT_HEIGHT, top)
    group_w = plot_w / max(len(models), 1)
    bar_w = min(40.0, group_w * 0.75 / max(len(eval_types), 1))
    body = _y_axis(y, left, left + plot_w, [0.0, 0.25, 0.5, 0.75, 1.0])
    body += _legend(eval_types, left, 16)
    for m, model in enumerate(models):
        center = left + group_w * (m + 0.5)
        first = center - bar_w * len(eval_types) / 2
        for entry in (e for e in entries if e.candidate_model == model):
            x = first + bar_w * eval_types.index(entry.eval_type)
            body.append(_bar(entry, metric, x, bar_w, y))
        # Model names are long: the owner on one line, the name below.
        owner, slash, name = model.rpartition("/")
        lines = [owner + slash, name] if slash else [name]
        body.append(
            svg.element(
                "text",
                {
                    "x": center,
                    "y": top + SCORE_PLOT_HEIGHT + 18,
                    "text_anchor": "middle",
                    "class_": "candidate",
                    **_FONT,
                },
                *(
                    svg.element("tspan", {"x": center, "dy": 14 if i else 0}, escape(line))
                    for i, line in enumerate(lines)
                ),
            )
        )
    axis_y = y(0.0)
    body.append(
        svg.element(
            "line", {"x1": left, "x2": left + plot_w, "y1": axis_y, "y2": axis_y, "stroke": _AXIS}
        )
    )
    return svg.svg(width, height, f"{metric} per candidate and evaluation", body, "chart scores")


def _bar(entry: LeaderboardEntry, metric: str, x: float, bar_w: float, y: svg.Scale) -> str:
    ids = {"data_candidate": entry.candidate_model, "data_eval_type": str(entry.eval_type)}
    score = _score(entry, metric)
    if score is None:
        why = entry.error or f"no {metric} score"
        return svg.element(
            "g",
            {"class_": "missing", **ids},
            svg.title(f"{entry.candidate_model} {entry.eval_type}: {why}"),
            svg.text(
                "\u2715",
                {"x": x + bar_w / 2, "y": y(0.0) - 4, "text_anchor": "middle", "fill": _FAILED},
            ),
        )
    top = y(score.value)
    return svg.element(
        "g",
        {"class_": "bar", "data_value": f"{score.value:.4f}", **ids},
        svg.title(_describe(entry, score)),
        svg.element(
            "rect",
            {
                "x": x + 1,
                "y": top,
                "width": bar_w - 2,
                "height": y(0.0) - top,
                "fill": EVAL_COLORS[entry.eval_type],
            },
        ),
        _whisker(x + bar_w / 2, y(score.ci_high), y(score.ci_low), score, bar_w / 5),
    )


def cost_chart(entries: Sequence[LeaderboardEntry], metric: str) -> str:
    """One point per scored evaluation: estimated $ per 1,000 requests against the metric."""
    points = [
        (entry, score, entry.cost_per_1k_requests_usd)
        for entry in entries
        if (score := _score(entry, metric)) is not None
        and entry.cost_per_1k_requests_usd is not None
    ]
    models = list(dict.fromkeys(entry.candidate_model for entry in entries))
    left, top, plot_w, plot_h = 48.0, 34.0, 340.0, SCORE_PLOT_HEIGHT
    width, height = left + plot_w + 190, top + plot_h + 44
    x_ticks = svg.nice_ticks(max((cost for *_, cost in points), default=0.0) * 1.05)
    x = svg.Scale(0.0, x_ticks[-1], left, left + plot_w)
    y = svg.Scale(0.0, 1.0, top + plot_h, top)
    body = _y_axis(y, left, left + plot_w, [0.0, 0.25, 0.5, 0.75, 1.0])
    body += _legend(_eval_types([entry for entry, *_ in points]), left, 16)
    for tick in x_ticks:
        body.append(
            svg.text(
                f"{tick:g}",
                {"x": x(tick), "y": top + plot_h + 16, "text_anchor": "middle", **_FONT},
            )
        )
    body.append(
        svg.text(
            "estimated $ per 1,000 requests",
            {"x": left + plot_w / 2, "y": height - 6, "text_anchor": "middle", **_FONT},
        )
    )
    # Colour tells the evaluation type, shape the candidate: labels beside the points would
    # overlap wherever two candidates cost about the same.
    for i, model in enumerate(models):
        row = top + 6 + 18 * i
        body.append(_marker(i, left + plot_w + 24, row, "#777"))
        body.append(svg.text(model, {"x": left + plot_w + 34, "y": row + 4, **_FONT}))
    for entry, score, cost in points:
        cx, cy = x(cost), y(score.value)
        shape = models.index(entry.candidate_model)
        body.append(
            svg.element(
                "g",
                {
                    "class_": "point",
                    "data_candidate": entry.candidate_model,
                    "data_eval_type": str(entry.eval_type),
                    "data_cost": f"{cost:.6f}",
                    "data_value": f"{score.value:.4f}",
                },
                svg.title(f"{_describe(entry, score)}; ${cost:.4f} per 1,000 requests"),
                _whisker(cx, y(score.ci_high), y(score.ci_low), score, 3),
                _marker(shape, cx, cy, EVAL_COLORS[entry.eval_type]),
            )
        )
    return svg.svg(width, height, f"estimated cost against {metric}", body, "chart cost")


def _marker(shape: int, cx: float, cy: float, color: str) -> str:
    """A point drawn as a circle, square, triangle or diamond (then round again)."""
    paint: dict[str, svg.Attr] = {"fill": color, "stroke": "#fff", "class_": "marker"}
    r = 5.5
    match shape % 4:
        case 0:
            return svg.element("circle", {"cx": cx, "cy": cy, "r": r, **paint})
        case 1:
            box = {"x": cx - r, "y": cy - r, "width": 2 * r, "height": 2 * r}
            return svg.element("rect", {**box, **paint})
        case 2:
            corners = [(cx, cy - r - 1), (cx + r + 1, cy + r), (cx - r - 1, cy + r)]
        case _:
            corners = [(cx, cy - r - 1), (cx + r + 1, cy), (cx, cy + r + 1), (cx - r - 1, cy)]
    points = " ".join(f"{px:.1f},{py:.1f}" for px, py in corners)
    return svg.element("polygon", {"points": points, **paint})


SAVINGS_ROW = 26.0
"""Height of one bar's row in the savings chart."""


def savings_chart(
    entries: Sequence[LeaderboardEntry],
    production: ProductionRow | None,
    recommended: tuple[str | None, str | None] = (None, None),
) -> str:
    """One horizontal bar per candidate and evaluation type: its monthly saving against
    production at the logged volume, right of zero when it saves, left when it costs more.

    An unknown saving is written "unknown" at zero, never drawn as 0. Production's own monthly
    cost, when known, is a dashed line: the most any candidate could save."""
    label_w, top, plot_w, value_w = 300.0, 34.0, 520.0, 110.0
    width = label_w + plot_w + value_w
    bottom = top + SAVINGS_ROW * len(entries) + 4
    height = bottom + 18
    known = [e.monthly_saving_usd for e in entries if e.monthly_saving_usd is not None]
    ceiling = production.monthly_cost_usd if production is not None else None
    high = max([0.0, *known, *([ceiling] if ceiling is not None else [])])
    low = min([0.0, *known])
    ticks = _signed_ticks(low, high)
    x = svg.Scale(ticks[0], ticks[-1], label_w, label_w + plot_w)
    body = []
    for tick in ticks:
        body.append(
            svg.element(
                "line", {"x1": x(tick), "x2": x(tick), "y1": top - 4, "y2": bottom, "stroke": _GRID}
            )
        )
        body.append(
            svg.text(
                figures.usd(tick, 0),
                {"x": x(tick), "y": top - 10, "text_anchor": "middle", **_FONT},
            )
        )
    for row, entry in enumerate(entries):
        body.append(_saving_bar(entry, x, top + row * SAVINGS_ROW, recommended, label_w))
    zero = x(0.0)
    body.append(
        svg.element("line", {"x1": zero, "x2": zero, "y1": top - 4, "y2": bottom, "stroke": _AXIS})
    )
    if ceiling is not None and ceiling > 0:
        body.append(
            svg.element(
                "g",
                {"class_": "ceiling", "data_cost": f"{ceiling:.2f}"},
                svg.title(f"production's monthly cost: {figures.usd(ceiling)}"),
                svg.element(
                    "line",
                    {
                        "x1": x(ceiling),
                        "x2": x(ceiling),
                        "y1": top - 4,
                        "y2": bottom,
                        "stroke": _AXIS,
                        "stroke_dasharray": "4 3",
                    },
                ),
                svg.text(
                    f"production {figures.usd(ceiling)} a month",
                    {"x": x(ceiling), "y": bottom + 14, "text_anchor": "middle", **_FONT},
                ),
            )
        )
    return svg.svg(
        width, height, "monthly saving against production per candidate", body, "chart savings"
    )


def _signed_ticks(low: float, high: float) -> list[float]:
    """Round ticks from at most `low` (<= 0) to at least `high` (>= 0), through 0."""
    step_ticks = svg.nice_ticks(max(high, -low))
    step = step_ticks[1] - step_ticks[0]
    below = math.ceil(round(-low / step, 9))
    above = max(math.ceil(round(high / step, 9)), 1 if below == 0 else 0)
    return [round(i * step, 12) for i in range(-below, above + 1)]


def _saving_bar(
    entry: LeaderboardEntry,
    x: svg.Scale,
    y: float,
    recommended: tuple[str | None, str | None],
    label_w: float,
) -> str:
    pick = (entry.candidate_model, str(entry.eval_type)) == recommended
    name = f"{entry.candidate_model} {entry.eval_type}" + (" \u2605" if pick else "")
    label: dict[str, svg.Attr] = {
        "x": label_w - 8,
        "y": y + 17,
        "text_anchor": "end",
        "class_": "bar-label",
        **_FONT,
    }
    if pick:
        label["font_weight"] = "bold"
    marks = [svg.text(name, label)]
    saving = entry.monthly_saving_usd
    ids: dict[str, svg.Attr] = {
        "data_candidate": entry.candidate_model,
        "data_eval_type": str(entry.eval_type),
    }
    if saving is None:
        why = f": {entry.error}" if entry.error else ""
        marks += [
            svg.title(f"{entry.candidate_model} {entry.eval_type}: monthly saving unknown{why}"),
            svg.text(
                figures.UNKNOWN, {"x": x(0.0) + 6, "y": y + 17, "fill": "#777", "font_size": 11}
            ),
        ]
        return svg.element("g", {"class_": "saving unknown", **ids}, *marks)
    left, right = sorted((x(0.0), x(saving)))
    colour = COST_INCREASE_COLOR if saving < 0 else SAVING_COLOR
    phrase = figures.saving_phrase(saving)
    ratio = "" if entry.cost_ratio is None else f" ({figures.ratio(entry.cost_ratio)} the cost)"
    marks += [
        svg.title(f"{entry.candidate_model} {entry.eval_type} {phrase}{ratio}"),
        svg.element(
            "rect",
            {
                "x": left,
                "y": y + 4,
                # A saving of a few cents still shows.
                "width": max(right - left, 2.0),
                "height": SAVINGS_ROW - 8,
                "fill": colour,
            },
        ),
        svg.text(
            figures.signed_saving(saving),
            # Right of the bar, or of zero for a cost increase: never over the names.
            {"x": right + 6, "y": y + 17, **_FONT},
        ),
    ]
    return svg.element("g", {"class_": "saving", "data_saving": f"{saving:.2f}", **ids}, *marks)


TIMELINE_ROW = 24.0
"""Height of one timeline lane in pixels."""


def timeline_chart(lanes: Sequence[Lane], started: datetime, ended: datetime) -> str:
    """Gantt-like lanes on an axis of seconds since `started`, the run's first event."""
    label_w, top, plot_w = 300.0, 30.0, 620.0
    width, height = label_w + plot_w + 20, top + TIMELINE_ROW * len(lanes) + 10
    ticks = svg.nice_ticks((ended - started).total_seconds(), count=8)
    x = svg.Scale(0.0, ticks[-1], label_w, label_w + plot_w)
    body = []
    for tick in ticks:
        body.append(
            svg.element(
                "line", {"x1": x(tick), "x2": x(tick), "y1": top - 4, "y2": height, "stroke": _GRID}
            )
        )
        body.append(
            svg.text(clock(tick), {"x": x(tick), "y": top - 10, "text_anchor": "middle", **_FONT})
        )
    for row, lane in enumerate(lanes):
        y = top + row * TIMELINE_ROW
        marks = [
            svg.text(
                lane.label,
                {
                    "x": label_w - 8,
                    "y": y + 16,
                    "text_anchor": "end",
                    "class_": "lane-label",
                    **_FONT,
                },
            )
        ]
        color = _LANE_COLORS[lane.kind] if lane.eval_type is None else EVAL_COLORS[lane.eval_type]
        marks += [_segment(segment, x, y, started, color) for segment in lane.segments]
        body.append(
            svg.element(
                "g",
                {"class_": "lane", "data_lane": lane.label, "data_kind": str(lane.kind)},
                *marks,
            )
        )
    return svg.svg(width, height, "the run's timeline", body, "chart timeline")


def _segment(segment: Segment, x: svg.Scale, y: float, started: datetime, color: str) -> str:
    begin = (segment.start - started).total_seconds()
    end = (segment.end - started).total_seconds()
    fill = _FAILED if segment.state is State.FAILED else color
    style: dict[str, svg.Attr] = {"fill": fill, "fill_opacity": 0.45 if segment.preparing else 1}
    if segment.state is State.UNFINISHED:
        style.update({"fill_opacity": 0.35, "stroke": color, "stroke_dasharray": "4 3"})
    return svg.element(
        "g",
        {
            "class_": f"segment {segment.state}",
            "data_start": f"{begin:.3f}",
            "data_end": f"{end:.3f}",
        },
        svg.title(f"{segment.label}: {clock(begin)} to {clock(end)} ({segment.state})"),
        svg.element(
            "rect",
            {
                "x": x(begin),
                # A stage of a few milliseconds still shows.
                "width": max(x(end) - x(begin), 2.0),
                "y": y + 4,
                "height": TIMELINE_ROW - 8,
                "rx": 3,
                **style,
            },
        ),
    )


def clock(seconds: float) -> str:
    """A time on the run's axis: tenths below ten seconds, then seconds, then m:ss."""
    # Sub-second ticks of a short run would all read "0s" when rounded to whole seconds.
    if seconds < 10 and seconds != round(seconds):
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}" if minutes else f"{rest}s"
