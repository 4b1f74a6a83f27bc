"""A run's HTML report written next to the stack's state, and its screenshot.

`report_with_screenshot` is what a suite calls after a finished run to keep a picture of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.report import Drilldown, write_report
from flywheel_localstack.browser import WINDOW, screenshot


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    png: Path


def write_run_report(
    run_id: UUID,
    events: Iterable[Envelope[Any]],
    directory: Path,
    name: str | None = None,
    drilldown: Drilldown | None = None,
) -> Path:
    """`directory/<name or run id>.html`; returns its path."""
    return write_report(run_id, events, directory / f"{name or run_id}.html", drilldown)


def report_with_screenshot(
    run_id: UUID,
    events: Iterable[Envelope[Any]],
    directory: Path,
    name: str | None = None,
    window: tuple[int, int] = WINDOW,
    drilldown: Drilldown | None = None,
) -> ReportFiles:
    """The run's report and a headless browser's screenshot of it, `<name or run id>.html` and
    `.png` in `directory` (the browser is installed on first use)."""
    html = write_run_report(run_id, events, directory, name, drilldown)
    return ReportFiles(html, screenshot(html, html.with_suffix(".png"), window=window))
