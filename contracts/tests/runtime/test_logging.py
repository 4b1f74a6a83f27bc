import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from flywheel_contracts.runtime.logging import bound_fields, configure_logging

pytestmark = pytest.mark.unit


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_bound_event_fields_and_library_records_share_the_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")

    with bound_fields(event_id="e-1", run_id="r-1"):
        structlog.get_logger("flywheel.test").info("event.handled", outcome="ok")
    logging.getLogger("some.library").warning("plain %s", "record")
    structlog.get_logger("flywheel.test").info("after")

    first, library, after = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["event"] == "event.handled"
    assert (first["event_id"], first["run_id"], first["outcome"]) == ("e-1", "r-1", "ok")
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert (library["event"], library["level"]) == ("plain record", "warning")
    assert "event_id" not in after


@pytest.mark.usefixtures("restore_logging")
def test_the_level_filters_and_console_format_is_not_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("console", "WARNING")

    structlog.get_logger("flywheel.test").info("hidden")
    structlog.get_logger("flywheel.test").warning("shown", run_id="r-1")

    [line] = capsys.readouterr().out.splitlines()
    assert "shown" in line
    assert "run_id=r-1" in line
    assert not line.startswith("{")
