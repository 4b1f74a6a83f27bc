"""A run's HTML report, built from its events: the decision's headline, scores with confidence
intervals, estimated cost against accuracy, the monthly saving against production, the run's
timeline, the leaderboard (production's reference row first) and the run's metadata.

`build_report` is pure; the page is self-contained (inline SVG and CSS, no script), so it can be
mailed, archived or screenshotted as one file.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from uuid import UUID

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.report.drilldown import Drilldown, fetch_drilldown
from flywheel_contracts.report.page import render_page
from flywheel_contracts.report.story import RunStory, tell

__all__ = ["Drilldown", "RunStory", "build_report", "fetch_drilldown", "tell", "write_report"]


def build_report(
    run_id: UUID, events: Iterable[Envelope[Any]], drilldown: Drilldown | None = None
) -> str:
    """The HTML report of run `run_id`; events of other runs are ignored. `drilldown` adds the
    recommended candidate's answers record by record.

    Raises ValueError when none of the events belongs to the run.
    """
    own = [envelope for envelope in events if envelope.run_id == run_id]
    story = tell(run_id, own)
    return render_page(story, events=len({e.event_id for e in own}), drilldown=drilldown)


def write_report(
    run_id: UUID, events: Iterable[Envelope[Any]], path: Path, drilldown: Drilldown | None = None
) -> Path:
    """Write the report to `path` (creating its folder); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(run_id, events, drilldown), encoding="utf-8")
    return path
