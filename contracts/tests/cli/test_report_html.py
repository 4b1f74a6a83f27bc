"""`flywheel report RUN --html PATH`: the HTML report from every topic of the run."""

from pathlib import Path
from uuid import uuid4

import pytest

from flywheel_contracts.cli.errors import ExitCode
from flywheel_contracts.cli.runs import RUN_TOPICS
from flywheel_contracts.report.sample import CANDIDATES, sample_run

from .conftest import FakeBus, Invoke, golden

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def test_html_report_holds_every_stage_of_the_run(
    invoke: Invoke, bus: FakeBus, tmp_path: Path
) -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    bus.add(*events, *sample_run(uuid4()))  # and another run's events
    target = tmp_path / "reports" / "run.html"

    result = invoke("report", str(run_id), "--html", str(target))

    assert result.exit_code == 0, result.output
    assert bus.reads == [RUN_TOPICS]
    assert f"HTML report written to {target}" in result.stderr
    assert "Recommended:" in result.stdout  # the leaderboard is still printed
    page = target.read_text()
    assert f"Built from {len(events)} events of run {run_id}" in page
    for candidate in CANDIDATES:
        assert f'data-lane="{candidate.model_name} eval base"' in page


def test_html_report_of_a_failed_run_is_written_and_exits_3(
    invoke: Invoke, bus: FakeBus, tmp_path: Path
) -> None:
    run_id = uuid4()
    bus.add(golden("run.requested", run_id), golden("run.failed", run_id))
    target = tmp_path / "failed.html"

    result = invoke("report", str(run_id), "--html", str(target))

    assert result.exit_code == ExitCode.RUN_FAILED
    assert "found 12 usable records" in target.read_text()


def test_no_html_report_for_an_unfinished_run(invoke: Invoke, bus: FakeBus, tmp_path: Path) -> None:
    run_id = uuid4()
    bus.add(golden("run.requested", run_id))
    target = tmp_path / "unfinished.html"

    result = invoke("report", str(run_id), "--html", str(target))

    assert result.exit_code == ExitCode.ERROR
    assert "has not finished" in result.stderr
    assert not target.exists()


def test_an_unwritable_html_path_is_one_error_line(
    invoke: Invoke, bus: FakeBus, tmp_path: Path
) -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    bus.add(*events)
    blocker = tmp_path / "file"
    blocker.write_text("")

    result = invoke("report", str(run_id), "--html", str(blocker / "run.html"))

    assert result.exit_code == ExitCode.ERROR
    assert "cannot write the report" in result.stderr
