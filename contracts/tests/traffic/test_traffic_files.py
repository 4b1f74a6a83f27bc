"""Writing traffic files, from Python and from the command line, and how fast."""

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel_contracts.traffic import (
    ORDER_TOOLS,
    TrafficConfig,
    generate_lines,
    generate_to_file,
    main,
)
from flywheel_contracts.traffic.malformed import LINE_REASONS, MIN_MAX_LINE_BYTES

pytestmark = pytest.mark.unit


def test_file_holds_exactly_the_records_and_the_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    summary = generate_to_file(path, 3000, 8, malformed=150, max_line_bytes=MIN_MAX_LINE_BYTES)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines.pop() == ""  # every line ends with a newline
    assert len(lines) == 3150
    expected = list(generate_lines(3000, 8))
    # Broken lines are mixed in without changing the valid ones or their order.
    assert [line for line in lines if line in set(expected)] == expected
    assert summary.records == 3000 and sum(summary.workloads.values()) == 3000
    assert sum(summary.malformed.values()) == 150
    assert set(summary.malformed) == LINE_REASONS
    assert summary.bytes == path.stat().st_size
    first_broken = next(i for i, line in enumerate(lines) if line != expected[i])
    assert first_broken < 300, "broken lines are spread through the file, not appended"


def test_same_arguments_same_file(tmp_path: Path) -> None:
    config = TrafficConfig(timestamp_format="mixed")
    generate_to_file(
        tmp_path / "a", 500, 1, config, malformed=40, max_line_bytes=MIN_MAX_LINE_BYTES
    )
    generate_to_file(
        tmp_path / "b", 500, 1, config, malformed=40, max_line_bytes=MIN_MAX_LINE_BYTES
    )
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


@pytest.mark.parametrize(
    ("records", "malformed", "limit"),
    [(-1, 0, MIN_MAX_LINE_BYTES), (1, -1, MIN_MAX_LINE_BYTES), (1, 1, 10)],
)
def test_bad_arguments_leave_no_file(
    tmp_path: Path, records: int, malformed: int, limit: int
) -> None:
    with pytest.raises(ValueError, match=r">= (0|65536)$"):
        generate_to_file(
            tmp_path / "n.jsonl", records, 0, malformed=malformed, max_line_bytes=limit
        )
    assert not (tmp_path / "n.jsonl").exists()


def test_main_maps_every_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, expected = tmp_path / "cli.jsonl", tmp_path / "api.jsonl"
    argv = ["--records", "60", "--seed", "3", "--out", str(out), "--workloads", ORDER_TOOLS]
    argv += ["--client-id", "a", "--client-id", "b", "--start", "2024-05-01T12:00:00"]
    argv += ["--timestamp-format", "iso", "--model", "m/x", "--no-metadata", "--malformed", "5"]
    argv += ["--max-line-bytes", str(MIN_MAX_LINE_BYTES)]
    assert main(argv) == 0
    assert "wrote 60 records and 5 malformed lines" in capsys.readouterr().out
    config = TrafficConfig(
        workloads=(ORDER_TOOLS,),
        client_ids=("a", "b"),
        start=dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
        timestamp_format="iso",
        model="m/x",
        metadata=False,
    )
    generate_to_file(expected, 60, 3, config, malformed=5, max_line_bytes=MIN_MAX_LINE_BYTES)
    assert out.read_bytes() == expected.read_bytes()


@pytest.mark.parametrize(
    "options",
    [
        ["--workloads", "nope"],
        ["--start", "tomorrow"],
        ["--malformed", "-1"],
        ["--max-line-bytes", "100"],
        ["--client-id", ""],
    ],
)
def test_main_rejects_bad_options(
    options: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--records", "5", "--out", str(tmp_path / "x.jsonl"), *options])
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_main_requires_records_and_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--records", "5"])
    assert "--out" in capsys.readouterr().err


def test_python_dash_m_runs_the_generator(tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    command = [
        sys.executable,
        "-m",
        "flywheel_contracts.traffic",
        "--records",
        "20",
        "--out",
        str(out),
    ]
    result = subprocess.run(
        [*command, "--start", "1736150400"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    start = dt.datetime(2025, 1, 6, 8, tzinfo=dt.UTC)
    assert out.read_text().splitlines() == list(generate_lines(20, 0, TrafficConfig(start=start)))


def test_throughput(tmp_path: Path) -> None:
    records = 20_000
    started = time.perf_counter()
    summary = generate_to_file(tmp_path / "big.jsonl", records, 1)
    rate = records / (time.perf_counter() - started)
    print(
        f"\ntraffic generator: {rate:,.0f} records/s, {summary.bytes / records:,.0f} bytes/record"
    )
    assert rate > 2_000  # a sanity floor only; shared CI machines vary
