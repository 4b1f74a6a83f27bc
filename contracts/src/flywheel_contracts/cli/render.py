"""How runs, leaderboards and topics look on the terminal (rich renderables and text lines)."""

import json
import os
from dataclasses import asdict
from uuid import UUID

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from flywheel_contracts.cli.bus import TopicStats
from flywheel_contracts.cli.progress import RunProgress, Status, Step
from flywheel_contracts.events import LeaderboardEntry, ProductionRow, RunCompleted, RunFailed
from flywheel_contracts.report import figures
from flywheel_contracts.report.drilldown import Drilldown
from flywheel_contracts.run_config import EvalType

_BAR_WIDTH = 30
_STATUS_STYLE = {
    Status.PENDING: "dim",
    Status.RUNNING: "cyan",
    Status.DONE: "green",
    Status.FAILED: "red",
}
_EVAL_ORDER = list(EvalType)
_SCORE_WIDTH = len("0.00-0.00")
_USAGE_COLUMNS = (
    ("latency ms p50 / p95", len("9999 / 9999")),
    ("tokens per req", 6),
    ("$ per 1k req", 7),
    ("deployed s", 8),
)
_SAVING_COLUMNS = (
    ("cost ratio", len("unknown")),
    ("monthly saving", len("+$99,999.99")),
    ("p95 latency ratio", len("unknown")),
)
_PIPE_WIDTH = 160


def console(*, stderr: bool = False) -> Console:
    """A console that, writing to a pipe or file, does not wrap at rich's default 80 columns."""
    out = Console(stderr=stderr)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = _PIPE_WIDTH
    return out


def progress_view(progress: RunProgress) -> RenderableType:
    """The live view of `watch`: one bar per stage, candidate by candidate."""
    requested = progress.requested
    title = Text(f"run {progress.run_id}", style="bold")
    if requested is not None:
        title.append(f"  {requested.workload_id} / {requested.client_id}", style="dim")
    grid = Table.grid(padding=(0, 1))
    grid.add_row(*_step_row("dataset", progress.dataset))
    for model, candidate in progress.candidates.items():
        grid.add_row(Text(model, style="bold"))
        grid.add_row(*_step_row("  deployment", candidate.deployment))
        if candidate.customization is not None:
            grid.add_row(*_step_row("  training", candidate.customization))
        for eval_type in sorted(candidate.evaluations, key=_EVAL_ORDER.index):
            grid.add_row(*_step_row(f"  eval {eval_type}", candidate.evaluations[eval_type]))
    parts: list[RenderableType] = [title, grid]
    if progress.cancelled is not None:
        parts.append(Text(f"cancel requested: {progress.cancelled.reason}", style="yellow"))
    if progress.reclaimed:
        parts.append(Text(f"{progress.reclaimed} resources reclaimed", style="dim"))
    return Group(*parts)


def _step_row(label: str, step: Step) -> tuple[RenderableType, ...]:
    style = _STATUS_STYLE[step.status]
    bar = ProgressBar(
        total=100.0,
        completed=step.percent or 0.0,
        width=_BAR_WIDTH,
        # A running stage that reports no percent (dataset building) pulses instead.
        pulse=step.status is Status.RUNNING and step.percent is None,
        complete_style=style,
        finished_style=style,
    )
    state = f"{step.percent:3.0f}%" if step.status is Status.RUNNING and step.percent else ""
    return Text(label), bar, Text(state or str(step.status), style=style), Text(step.detail)


def outcome_line(progress: RunProgress) -> str:
    """How the run ended, in one line; empty while it has not."""
    if progress.completed is not None:
        recommendation = progress.completed.leaderboard.recommendation
        if recommendation.candidate_model is None:
            return f"run {progress.run_id} completed; no recommendation: {recommendation.reason}"
        return (
            f"run {progress.run_id} completed; recommended {recommendation.candidate_model} "
            f"({recommendation.eval_type}): {recommendation.reason}"
        )
    if progress.failed is not None:
        return failure_line(progress.run_id, progress.failed)
    return ""


def failure_line(run_id: UUID, failed: RunFailed) -> str:
    stage = f" at {failed.stage}" if failed.stage else ""
    return f"run {run_id} failed{stage} ({failed.reason}): {failed.message}"


def leaderboard_view(run_id: UUID, completed: RunCompleted) -> RenderableType:
    """The final report: the decision's headline, production's reference row and one row per
    candidate and evaluation, then why the others fell short and the recommendation."""
    board = completed.leaderboard
    recommendation = board.recommendation
    metrics = list(dict.fromkeys(s.name for entry in board.entries for s in entry.scores))
    table = Table(
        title=f"run {run_id}: {completed.workload_id} / {completed.client_id}",
        caption="score: mean, 95% confidence interval below · ratios: candidate over production"
        " · monthly saving at the logged volume, negative: costs more",
        box=box.SIMPLE_HEAD,
    )
    # Model names have no spaces to wrap at; folded mid-name they would be unreadable.
    names = [entry.candidate_model for entry in board.entries]
    if board.production is not None:
        names.append(figures.production_models(board.production.baseline))
    table.add_column("candidate", min_width=max(map(len, names), default=0), overflow="fold")
    table.add_column("eval", width=len(EvalType.CUSTOMIZED))
    for metric in metrics:
        # Spaced names wrap in the header instead of widening the column.
        table.add_column(metric.replace("_", " "), justify="right", width=_SCORE_WIDTH)
    for heading, width in _SAVING_COLUMNS + _USAGE_COLUMNS:
        table.add_column(heading, justify="right", width=width)
    if board.production is not None:
        table.add_row(*_production_cells(board.production, metrics), style="dim")
    notes: list[RenderableType] = []
    judged = {(v.candidate_model, v.eval_type) for v in recommendation.verdicts}
    for entry in board.entries:
        table.add_row(*_entry_cells(entry, metrics))
        if entry.error is not None and (entry.candidate_model, entry.eval_type) not in judged:
            notes.append(Text(f"{entry.candidate_model} {entry.eval_type}: {entry.error}", "red"))
    if recommendation.candidate_model is None:
        headline = Text(recommendation.reason, style="bold yellow")
        pick = Text(figures.pick_line(recommendation), style="yellow")
    else:
        headline = Text(recommendation.reason, style="bold green")
        pick = Text(figures.pick_line(recommendation), style="green")
    parts: list[RenderableType] = [headline, pick, table]
    if board.production is not None:
        parts.append(Text(figures.production_summary(board.production), style="dim"))
    parts += notes
    verdicts = figures.other_verdicts(recommendation)
    if verdicts:
        shown = "Why not the others:" if recommendation.candidate_model else "Verdicts:"
        parts.append(Text(shown, style="bold"))
        parts += [Text(f"  {figures.verdict_line(v)}") for v in verdicts]
    needed = figures.records_needed(recommendation)
    if needed is not None:
        parts.append(Text(needed, style="yellow"))
    return Group(*parts)


def _production_cells(row: ProductionRow, metrics: list[str]) -> list[Text | str]:
    """Production's reference row: the baseline from the logs, its ratios 1 by definition."""
    baseline = row.baseline
    latency = ""
    if baseline.latency_p50_ms is not None and baseline.latency_p95_ms is not None:
        latency = f"{baseline.latency_p50_ms:.0f} / {baseline.latency_p95_ms:.0f}"
    return [
        Text(figures.production_models(baseline), style="bold"),
        "production",
        *("" for _ in metrics),
        "1.00x" if row.cost_per_1k_requests_usd is not None else figures.UNKNOWN,
        "",
        "1.00x" if baseline.latency_p95_ms is not None else figures.UNKNOWN,
        latency or figures.UNKNOWN,
        _number(baseline.tokens_per_request, ".0f") or figures.UNKNOWN,
        _number(row.cost_per_1k_requests_usd, ".4f") or figures.UNKNOWN,
        "",
    ]


def _entry_cells(entry: LeaderboardEntry, metrics: list[str]) -> list[Text | str]:
    scores = {score.name: score for score in entry.scores}
    cells: list[Text | str] = [entry.candidate_model, str(entry.eval_type)]
    for metric in metrics:
        score = scores.get(metric)
        if score is None:
            cells.append("error" if entry.error is not None else "")
        else:
            cells.append(f"{score.value:.2f}\n{score.ci_low:.2f}-{score.ci_high:.2f}")
    latency = ""
    if entry.latency_p50_ms is not None and entry.latency_p95_ms is not None:
        latency = f"{entry.latency_p50_ms:.0f} / {entry.latency_p95_ms:.0f}"
    scored = entry.error is None
    saving = figures.signed_saving(entry.monthly_saving_usd) if scored else ""
    saving_style = "red" if (entry.monthly_saving_usd or 0) < 0 else "green"
    cells += [
        figures.ratio(entry.cost_ratio) if scored else "",
        Text(saving, style=saving_style if entry.monthly_saving_usd is not None else ""),
        figures.ratio(entry.latency_p95_ratio) if scored else "",
        latency,
        _number(entry.tokens_per_request, ".0f"),
        _number(entry.cost_per_1k_requests_usd, ".4f"),
        _number(entry.deployment_seconds, ".0f"),
    ]
    return cells


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def drilldown_view(drilldown: Drilldown, rows: int = 5) -> Table:
    """The recommended candidate's first answers next to production's: the evidence."""
    table = Table(
        title=f"What {drilldown.candidate_model} ({drilldown.eval_type.value}) answered "
        f"({min(rows, len(drilldown.records))} of {drilldown.total} records)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    for column in ("#", "prompt", "production answer", "candidate answer", "verdict"):
        table.add_column(column, overflow="fold")
    for record in drilldown.records[:rows]:
        table.add_row(
            str(record.index),
            _clip(record.prompt),
            _clip(record.production_answer),
            _clip(record.candidate_answer or "(no answer)"),
            record.verdict,
        )
    return table


def _clip(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def topics_view(rows: list[TopicStats]) -> Table:
    table = Table()
    table.add_column("topic")
    table.add_column("partitions", justify="right")
    table.add_column("end offsets", justify="right")
    table.add_column("lag by group")
    for row in rows:
        name = row.name if row.in_catalog else f"{row.name} [dim](not in catalog)[/]"
        if not row.exists:
            table.add_row(name, "[red]missing[/]", "", "")
            continue
        lag = ", ".join(f"{group.partition('flywheel.')[2]} {n}" for group, n in row.lag.items())
        offsets = " ".join(str(offset) for offset in row.end_offsets)
        table.add_row(name, str(len(row.end_offsets)), offsets, lag)
    return table


def topics_json(rows: list[TopicStats]) -> str:
    return json.dumps([asdict(row) for row in rows])
