"""A run's HTML report, built from its events: scores with confidence intervals, estimated cost
against accuracy, the run's timeline, the leaderboard and the run's metadata.

`build_report` is pure; the page is self-contained (inline SVG and CSS, no script), so it can be
mailed, archived or screenshotted as one file.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from uuid import UUID

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.report.page import render_page
from flywheel_contracts.report.story import RunStory, tell

__all__ = ["RunStory", "build_report", "tell", "write_report"]


def build_report(run_id: UUID, events: Iterable[Envelope[Any]]) -> str:
    """The HTML report of run `run_id`; events of other runs are ignored.

    Raises ValueError when none of the events belongs to the run.
    """
    own = [envelope for envelope in events if envelope.run_id == run_id]
    return render_page(tell(run_id, own), events=len({e.event_id for e in own}))


def write_report(run_id: UUID, events: Iterable[Envelope[Any]], path: Path) -> Path:
    """Write the report to `path` (creating its folder); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(run_id, events), encoding="utf-8")
    return path
