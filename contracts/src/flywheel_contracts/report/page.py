"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched."""

from datetime import datetime
from html import escape

from flywheel_contracts import events as ev
from flywheel_contracts.report import figures
from flywheel_contracts.report.charts import (
    cost_chart,
    savings_chart,
    score_chart,
    timeline_chart,
)
from flywheel_contracts.report.drilldown import Drilldown, drilldown_section
from flywheel_contracts.report.story import RunStory
from flywheel_contracts.run_config import CandidateConfig, RunConfig

PRODUCTION_ROW_BACKGROUND = "#e3ecf7"
"""The leaderboard's reference row, production's, stands out by this background."""

_CSS = """
table.drill td { vertical-align: top; max-width: 420px; }
table.drill pre { white-space: pre-wrap; margin: 0; font-size: 12px; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 24px 32px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 14px 0 4px; font-family: ui-monospace, monospace; }
.sub { color: #666; margin: 0 0 16px; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 0; }
dl.meta dt { color: #666; }
dl.meta dd { margin: 0; }
.verdict { padding: 8px 12px; border-radius: 4px; margin: 12px 0; }
.verdict p { margin: 2px 0; }
.verdict .headline { font-size: 16px; font-weight: 600; }
.verdict.ok { background: #e8f4ea; border-left: 4px solid #59a14f; }
.verdict.none { background: #fdf5e2; border-left: 4px solid #edc948; }
.verdict.failed { background: #fbe9e9; border-left: 4px solid #e15759; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: flex-start; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #eee; }
th { background: #f6f6f6; }
td.name, th.name { text-align: left; font-family: ui-monospace, monospace; white-space: nowrap; }
tr.recommended td { background: #e8f4ea; font-weight: 600; }
tr.production td { background: PRODUCTION_ROW_BACKGROUND; }
td.saves { color: #137a5c; }
td.dearer { color: #b34700; }
ul.verdicts { margin: 6px 0; padding-left: 20px; }
ul.verdicts .name { font-family: ui-monospace, monospace; }
td.error { color: #c03; text-align: left; }
.ci { color: #777; font-size: 11px; }
footer { color: #888; font-size: 12px; margin-top: 28px; }
""".replace("PRODUCTION_ROW_BACKGROUND", PRODUCTION_ROW_BACKGROUND)


def render_page(story: RunStory, *, events: int, drilldown: Drilldown | None = None) -> str:
    """The page of `story`, built from `events` events, with the recommended candidate's
    per-record answers when given; every text is escaped."""
    workload = _workload(story)
    heading = f"Run {story.run_id}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(f'{heading}: {workload}')}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Flywheel run report</h1><p class=sub>{escape(heading)} · {escape(workload)}</p>",
        _verdict(story),
        "<h2>Run</h2>",
        _metadata(story),
    ]
    board = story.completed.leaderboard if story.completed is not None else None
    if board is not None and board.entries:
        parts.append("<h2>Scores and estimated cost</h2>")
        parts.append(
            "<p class=sub>Mean score per candidate and evaluation type with its 95% confidence"
            " interval (left); estimated serving cost per 1,000 requests against the same score"
            " (right).</p>"
        )
        for metric in dict.fromkeys(s.name for e in board.entries for s in e.scores):
            parts.append(f"<h3>{escape(metric)}</h3><div class=charts>")
            parts.append(score_chart(board.entries, metric))
            parts.append(cost_chart(board.entries, metric))
            parts.append("</div>")
    if board is not None and board.entries:
        parts.append("<h2>Monthly saving against production</h2>")
        parts.append(
            "<p class=sub>What each candidate and evaluation type would save a month (30 days) at"
            " the logged volume, against the production model's estimated cost; right of zero"
            " saves, left costs more; the dashed line is production's whole monthly cost;"
            " \u2605 marks the recommendation.</p>"
        )
        if board.production is not None:
            parts.append(f"<p>{escape(figures.production_summary(board.production))}</p>")
        pick = board.recommendation
        recommended = (
            pick.candidate_model,
            None if pick.eval_type is None else str(pick.eval_type),
        )
        parts.append(savings_chart(board.entries, board.production, recommended))
    parts.append("<h2>Timeline</h2>")
    parts.append(timeline_chart(story.lanes, story.started_at, story.ended_at))
    if board is not None:
        parts.append("<h2>Leaderboard</h2>")
        parts.append(_leaderboard(board))
    if drilldown is not None:
        parts.append(drilldown_section(drilldown))
    if story.config is not None:
        parts.append("<h2>Candidates</h2>")
        parts.append(_candidates(story.config))
    parts.append(f"<footer>Built from {events} events of run {escape(str(story.run_id))}.</footer>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _workload(story: RunStory) -> str:
    source = story.completed or story.requested or story.config
    if source is None:
        return "workload unknown"
    return f"{source.workload_id} / {source.client_id}"


def _verdict(story: RunStory) -> str:
    if story.failed is not None:
        stage = f" at {story.failed.stage}" if story.failed.stage else ""
        text = f"Failed{stage} ({story.failed.reason}): {story.failed.message}"
        return f"<div class='verdict failed'>{escape(text)}</div>"
    if story.completed is None:
        return "<div class='verdict none'>The run has not finished.</div>"
    recommendation = story.completed.leaderboard.recommendation
    kind = "none" if recommendation.candidate_model is None else "ok"
    lines = [
        f"<p class=headline>{escape(recommendation.reason)}</p>",
        f"<p class=pick>{escape(figures.pick_line(recommendation))}</p>",
    ]
    needed = figures.records_needed(recommendation)
    if needed is not None:
        lines.append(f"<p class=needed>{escape(needed)}</p>")
    return f"<div class='verdict {kind}'>{''.join(lines)}</div>"


def _metadata(story: RunStory) -> str:
    rows: list[tuple[str, str]] = [("run id", str(story.run_id))]
    if story.requested is not None:
        rows.append(("requested by", story.requested.requested_by or "unknown"))
    if story.requested_at is not None:
        rows.append(("requested at", _time(story.requested_at)))
    rows.append(("last event at", _time(story.ended_at)))
    rows.append(("duration", f"{(story.ended_at - story.started_at).total_seconds():.1f} s"))
    if story.workload_type is not None:
        rows.append(("workload type", str(story.workload_type)))
    outcome = "running"
    if story.completed is not None:
        outcome = "completed"
    elif story.failed is not None:
        outcome = f"failed ({story.failed.reason})"
    rows.append(("outcome", outcome))
    if isinstance(story.dataset, ev.DatasetReady):
        counts, stats = story.dataset.counts, story.dataset.stats
        rows.append(
            (
                "datasets",
                f"eval {counts.eval} · icl {counts.icl} · train {counts.train} · val {counts.val}"
                f" ({stats.selected} of {stats.fetched} logged records selected)",
            )
        )
    elif isinstance(story.dataset, ev.DatasetFailed):
        rows.append(("datasets", f"failed ({story.dataset.reason}): {story.dataset.message}"))
    cells = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f"<dl class=meta>{cells}</dl>"


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _leaderboard(board: ev.Leaderboard) -> str:
    metrics = list(dict.fromkeys(s.name for e in board.entries for s in e.scores))
    head = [
        "candidate",
        "eval",
        # Spaced, the long metric names wrap instead of widening the table.
        *(metric.replace("_", " ") for metric in metrics),
        "cost ratio",
        "monthly saving",
        "p95 latency ratio",
        "latency ms p50 / p95",
        "tokens per req",
        "$ per 1k req",
        "deployed s",
        "error",
    ]
    header = "".join(
        f"<th{' class=name' if i < 2 else ''}>{escape(h)}</th>" for i, h in enumerate(head)
    )
    pick = board.recommendation
    rows = []
    if board.production is not None:
        rows.append(_production_row(board.production, metrics))
    for entry in board.entries:
        recommended = (entry.candidate_model, entry.eval_type) == (
            pick.candidate_model,
            pick.eval_type,
        )
        scored = entry.error is None
        saving = entry.monthly_saving_usd
        cells = [
            f"<td class=name>{escape(entry.candidate_model)}</td>",
            f"<td class=name>{escape(str(entry.eval_type))}</td>",
            *(_score_cell(entry, metric) for metric in metrics),
            _cell(figures.ratio(entry.cost_ratio) if scored else None),
            _cell(
                figures.signed_saving(saving) if scored else None,
                None if saving is None else "dearer" if saving < 0 else "saves",
            ),
            _cell(figures.ratio(entry.latency_p95_ratio) if scored else None),
            _cell(
                None
                if entry.latency_p50_ms is None or entry.latency_p95_ms is None
                else f"{entry.latency_p50_ms:.0f} / {entry.latency_p95_ms:.0f}"
            ),
            _cell(_number(entry.tokens_per_request, ".0f")),
            _cell(_number(entry.cost_per_1k_requests_usd, ".4f")),
            _cell("external" if entry.external else _number(entry.deployment_seconds, ".0f")),
            f"<td class=error>{escape(entry.error or '')}</td>",
        ]
        css = " class=recommended" if recommended else ""
        rows.append(f"<tr{css}>{''.join(cells)}</tr>")
    table = f"<table class=leaderboard><tr>{header}</tr>{''.join(rows)}</table>"
    return table + _verdicts(pick)


def _production_row(row: ev.ProductionRow, metrics: list[str]) -> str:
    """The reference row: production's figures from the logs; an unknown one says so."""
    baseline = row.baseline
    unknown = figures.UNKNOWN
    latency = unknown
    if baseline.latency_p50_ms is not None and baseline.latency_p95_ms is not None:
        latency = f"{baseline.latency_p50_ms:.0f} / {baseline.latency_p95_ms:.0f}"
    cells = [
        f"<td class=name>{escape(figures.production_models(baseline))}</td>",
        "<td class=name>production</td>",
        *("<td></td>" for _ in metrics),
        _cell("1.00x" if row.cost_per_1k_requests_usd is not None else unknown),
        _cell(
            "cost unknown"
            if row.monthly_cost_usd is None
            else f"costs {figures.usd(row.monthly_cost_usd)} a month"
        ),
        _cell("1.00x" if baseline.latency_p95_ms is not None else unknown),
        _cell(latency),
        _cell(_number(baseline.tokens_per_request, ".0f") or unknown),
        _cell(_number(row.cost_per_1k_requests_usd, ".4f") or unknown),
        _cell(None),
        _cell(None),
    ]
    return f"<tr class=production>{''.join(cells)}</tr>"


def _verdicts(recommendation: ev.Recommendation) -> str:
    verdicts = figures.other_verdicts(recommendation)
    if not verdicts:
        return ""
    title = "Why not the others" if recommendation.candidate_model else "Verdicts"
    items = "".join(
        f"<li><span class=name>{escape(f'{v.candidate_model} {v.eval_type}')}</span>: "
        f"{escape(figures.verdict_reason(v))}</li>"
        for v in verdicts
    )
    return f"<h3>{title}</h3><ul class=verdicts>{items}</ul>"


def _score_cell(entry: ev.LeaderboardEntry, metric: str) -> str:
    score = next((s for s in entry.scores if s.name == metric), None)
    if score is None:
        return "<td></td>"
    failed = f", {score.failed} failed" if score.failed else ""
    interval = f"{score.ci_low:.2f}-{score.ci_high:.2f} (n={score.n}{failed})"
    return f"<td>{score.value:.2f} <span class=ci>{escape(interval)}</span></td>"


def _cell(value: str | None, css: str | None = None) -> str:
    attr = f" class={css}" if css else ""
    return f"<td{attr}>{escape(value or '')}</td>"


def _number(value: float | None, spec: str) -> str | None:
    return None if value is None else format(value, spec)


def _candidates(config: RunConfig) -> str:
    head = "<th class=name>model</th><th>GPUs</th><th>$ per 1k tokens</th>"
    head += "<th class=name>LoRA customization</th>"
    rows = [
        "<tr>"
        f"<td class=name>{escape(c.model_name)}</td><td>{_served_by(c)}</td>"
        f"<td>{_price(c)}</td>"
        f"<td class=name>{escape(c.customization_target or 'yes') if c.customization_enabled else 'no'}"
        "</td></tr>"
        for c in config.candidates
    ]
    return f"<table class=candidates><tr>{head}</tr>{''.join(rows)}</table>"


def _served_by(candidate: CandidateConfig) -> str:
    """GPUs of an NMP deployment, or the external endpoint's host (never its key or path)."""
    if candidate.endpoint is None:
        return str(candidate.gpus)
    host = candidate.endpoint.base_url.split("://", 1)[1].split("/", 1)[0]
    return f"external: {escape(host)}"


def _price(candidate: CandidateConfig) -> str:
    prompt, completion = candidate.price_per_1k_input_tokens, candidate.price_per_1k_output_tokens
    if prompt > 0 or completion > 0:
        return f"{prompt:g} in / {completion:g} out"
    return f"{candidate.price_per_1k_tokens:g}"
