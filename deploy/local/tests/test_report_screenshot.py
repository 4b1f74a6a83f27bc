"""A run's HTML report opened in a real headless Chromium: the screenshot shows the page and its
charts. The files stay in .stack/reports/tests/ (git-ignored) to be looked at."""

from __future__ import annotations

from html import escape
from uuid import uuid4

import pytest

from flywheel_contracts import events as ev
from flywheel_contracts.report.charts import EVAL_COLORS, SAVING_COLOR
from flywheel_contracts.report.page import PRODUCTION_ROW_BACKGROUND
from flywheel_contracts.report.sample import sample_run
from flywheel_localstack.browser import WINDOW
from flywheel_localstack.config import StackSettings
from flywheel_localstack.png import hex_rgb, read_png
from flywheel_localstack.reports import report_with_screenshot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]  # a first run installs Chromium


def test_the_report_renders_in_a_headless_browser(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = uuid4()
    folder = StackSettings().reports_dir / "tests"
    events = sample_run(run_id)

    files = report_with_screenshot(run_id, events, folder, name="sample-run")

    with capsys.disabled():
        print(f"\nreport {files.html}\nscreenshot {files.png}")
    image = read_png(files.png)
    assert (image.width, image.height) == WINDOW
    colours = image.colours()
    # A blank or unstyled page has a handful of colours; the report has text, boxes and charts.
    assert len(colours) > 100
    background, share = colours.most_common(1)[0]
    assert background == (255, 255, 255)
    assert share < 0.97 * image.width * image.height
    # Every evaluation type's bars are drawn, in its colour, over more than a sliver.
    for eval_type, colour in EVAL_COLORS.items():
        assert colours[hex_rgb(colour)] > 2_000, f"no {eval_type} bars in {files.png}"
    # The answer: the savings chart's bars (every sample candidate saves) and production's
    # reference row in the leaderboard, each in its own colour.
    assert colours[hex_rgb(SAVING_COLOR)] > 5_000, f"no savings bars in {files.png}"
    assert colours[hex_rgb(PRODUCTION_ROW_BACKGROUND)] > 5_000, f"no baseline row in {files.png}"
    [completed] = [e.payload for e in events if isinstance(e.payload, ev.RunCompleted)]
    headline = completed.leaderboard.recommendation.reason
    assert headline.startswith("Switch customer-service-router from ")
    assert f"<p class=headline>{escape(headline)}</p>" in files.html.read_text()
