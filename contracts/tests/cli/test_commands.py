"""Every command on the in-memory bus: what it publishes, prints and exits with."""

import json
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from flywheel_contracts.cli.bus import Offsets
from flywheel_contracts.cli.errors import ExitCode
from flywheel_contracts.envelope import decode
from flywheel_contracts.events import RunCancelled, RunRequested, SystemShutdown
from flywheel_contracts.run_config import EvalType

from .conftest import FakeBus, Invoke, golden

# A following command that never ends is a failure, not a hung suite.
pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def test_run_prints_only_the_run_id_and_publishes_the_request(invoke: Invoke, bus: FakeBus) -> None:
    result = invoke(
        "run",
        "--workload", "support-agent.route-intent",
        "--client", "acme-prod",
        "--candidate", "meta/llama-3.2-1b-instruct,gpus=2",
        "--eval-size", "30",
        "--seed", "7",
        "--eval-type", "base",
        "--eval-type", "icl",
        "--requested-by", "alice",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = UUID(result.stdout.strip())
    [envelope] = bus.published
    assert (envelope.run_id, envelope.producer) == (run_id, "cli")
    payload = envelope.payload
    assert isinstance(payload, RunRequested)
    assert (payload.workload_id, payload.client_id, payload.requested_by) == (
        "support-agent.route-intent",
        "acme-prod",
        "alice",
    )
    overrides = payload.overrides
    assert overrides.candidates is not None
    assert overrides.candidates[0].gpus == 2
    assert (overrides.eval_size, overrides.random_seed) == (30, 7)
    assert overrides.eval_types == (EvalType.BASE, EvalType.ICL)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--client", "c"], "Missing option '--workload'"),
        (["run", "--workload", "w b", "--client", "c"], "--workload: String should match"),
        (["run", "--workload", "w", "--client", "c", "--eval-size", "x"], "is not a valid integer"),
        (["run", "--workload", "w", "--client", "c", "--limit", "0"], "--limit: Input should be"),
        (
            ["run", "--workload", "w", "--client", "c", "--eval-type", "best"],
            "'best' is not one of",
        ),
        (["cancel", "not-a-uuid"], "'not-a-uuid' is not a valid UUID"),
        (["watch", str(uuid4()), "--timeout", "0"], "--timeout"),
        (["tail", "logs.raw", "--run", str(uuid4())], "--run needs a topic of run events"),
        (["tail", "run.requested", "--max", "0"], "--max"),
    ],
)
def test_bad_arguments_are_usage_errors(
    invoke: Invoke, bus: FakeBus, args: list[str], message: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr
    assert bus.published == []


def test_cancel_publishes_run_cancelled(invoke: Invoke, bus: FakeBus) -> None:
    run_id = uuid4()
    result = invoke("cancel", str(run_id), "--reason", "wrong workload", "--requested-by", "bob")
    assert result.exit_code == 0, result.output
    [envelope] = bus.published
    assert envelope.run_id == run_id
    assert envelope.payload == RunCancelled(reason="wrong workload", requested_by="bob")


def test_shutdown_asks_first(invoke: Invoke, bus: FakeBus) -> None:
    declined = invoke("shutdown", input="n\n")
    assert declined.exit_code != 0
    assert bus.published == []
    confirmed = invoke("shutdown", "--yes", "--reason", "maintenance")
    assert confirmed.exit_code == 0, confirmed.output
    [envelope] = bus.published
    assert envelope.run_id is None
    assert isinstance(envelope.payload, SystemShutdown)
    assert envelope.payload.reason == "maintenance"


def _story(bus: FakeBus, run_id: UUID, *event_types: str) -> None:
    bus.add(*(golden(event_type, run_id) for event_type in event_types))


def test_watch_exits_0_when_the_run_completes(invoke: Invoke, bus: FakeBus) -> None:
    run_id = uuid4()
    _story(bus, run_id, "run.requested", "dataset.ready", "eval.progress", "run.completed")
    bus.add(golden("run.failed", uuid4()))  # another run's ending changes nothing
    result = invoke("watch", str(run_id), "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert "eval base" in result.stdout
    assert f"run {run_id} completed; recommended meta/llama-3.2-1b-instruct" in result.stdout
    assert "run.requested" in bus.reads[0] and "eval.progress" in bus.reads[0]


def test_watch_exits_3_with_the_reason_when_the_run_fails(invoke: Invoke, bus: FakeBus) -> None:
    run_id = uuid4()
    _story(bus, run_id, "run.requested", "dataset.failed", "run.failed")
    result = invoke("watch", str(run_id))
    assert result.exit_code == ExitCode.RUN_FAILED
    assert "not_enough_records" in result.stdout  # the dataset bar
    assert f"run {run_id} failed at datasets (dataset_failed)" in result.stderr


def test_watch_exits_4_on_timeout(invoke: Invoke, bus: FakeBus) -> None:
    run_id = uuid4()
    _story(bus, run_id, "run.requested")
    result = invoke("watch", str(run_id), "--timeout", "0.2")
    assert result.exit_code == ExitCode.TIMEOUT
    assert "did not finish within 0.2s" in result.stderr


def test_watch_skips_invalid_messages_with_a_warning(invoke: Invoke, bus: FakeBus) -> None:
    run_id = uuid4()
    bus.add_raw("run.requested", b"{not json", str(run_id).encode())
    _story(bus, run_id, "run.completed")
    result = invoke("watch", str(run_id))
    assert result.exit_code == 0, result.output
    assert "skipped run.requested[0]@0: not JSON" in result.stderr


def test_report_prints_the_leaderboard(invoke: Invoke, bus: FakeBus) -> None:
    run_id = uuid4()
    _story(bus, run_id, "run.requested", "run.completed")
    result = invoke("report", str(run_id))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "meta/llama-3.2-1b-instruct" in out
    assert "0.90" in out and "0.70-0.97" in out  # the score with its interval
    assert "182 / 410" in out  # latency p50 / p95
    assert "deployment failed: insufficient GPUs" in out
    assert "Recommended: meta/llama-3.2-1b-instruct (base)" in out


def test_report_json_is_the_final_event(invoke: Invoke, bus: FakeBus) -> None:
    run_id = uuid4()
    completed = golden("run.completed", run_id)
    bus.add(golden("run.requested", run_id), completed)
    result = invoke("report", str(run_id), "--json")
    assert result.exit_code == 0, result.output
    assert decode(result.stdout.strip().encode()) == completed


def test_report_of_a_failed_run_exits_3(invoke: Invoke, bus: FakeBus) -> None:
    run_id = uuid4()
    _story(bus, run_id, "run.requested", "run.failed")
    result = invoke("report", str(run_id))
    assert result.exit_code == ExitCode.RUN_FAILED
    assert "found 12 usable records" in result.stderr


@pytest.mark.parametrize(
    ("events", "message"),
    [((), "no run"), (("run.requested",), "has not finished"), (("run.cancelled",), "no run")],
)
def test_report_without_an_ending_is_an_error(
    invoke: Invoke, bus: FakeBus, events: tuple[str, ...], message: str
) -> None:
    run_id = uuid4()
    _story(bus, run_id, *events)
    result = invoke("report", str(run_id))
    assert result.exit_code == ExitCode.ERROR
    assert message in result.stderr


def test_tail_prints_json_lines(invoke: Invoke, bus: FakeBus) -> None:
    first, second = uuid4(), uuid4()
    _story(bus, first, "run.requested")
    _story(bus, second, "run.requested")
    everything = invoke("tail", "run.requested", "--from-beginning", "--no-follow")
    assert everything.exit_code == 0, everything.output
    lines = everything.stdout.splitlines()
    assert [decode(line.encode()).run_id for line in lines] == [first, second]
    only_new = invoke("tail", "run.requested", "--no-follow")
    assert only_new.exit_code == 0, only_new.output
    assert only_new.stdout == ""


def test_tail_filters_by_run_and_stops_at_max(invoke: Invoke, bus: FakeBus) -> None:
    run_id = uuid4()
    _story(bus, uuid4(), "run.requested")
    _story(bus, run_id, "run.requested", "run.requested")
    result = invoke("tail", "run.requested", "--run", str(run_id), "--from-beginning", "--max", "1")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert decode(line.encode()).run_id == run_id


def test_tail_shows_raw_topics_as_they_are(invoke: Invoke, bus: FakeBus) -> None:
    bus.add_raw("logs.raw", b'{"workload_id": "w"}\n')
    result = invoke("tail", "logs.raw", "--from-beginning", "--no-follow")
    assert result.stdout == '{"workload_id": "w"}\n'


def test_topics_shows_partitions_offsets_and_lag(invoke: Invoke, bus: FakeBus) -> None:
    bus.snapshot = Offsets(
        partitions={"run.requested": 3},
        end={("run.requested", 0): 5, ("run.requested", 1): 0, ("run.requested", 2): 7},
        committed={"flywheel.datasets": {("run.requested", 0): 5, ("run.requested", 2): 4}},
    )
    table = invoke("topics")
    assert table.exit_code == 0, table.output
    [row] = [line for line in table.stdout.splitlines() if " run.requested " in line]
    assert "5 0 7" in row
    assert "datasets 3" in row
    rows = {row["name"]: row for row in json.loads(invoke("topics", "--json").stdout)}
    assert rows["run.requested"]["end_offsets"] == [5, 0, 7]
    assert rows["run.requested"]["lag"] == {"flywheel.datasets": 3}
    assert not rows["run.completed"]["exists"]  # in the catalog, missing on the broker
    assert rows["run.requested.dlq"]["in_catalog"]


def test_logs_generate_passes_its_arguments_through(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "traffic.jsonl"
    result = invoke("logs", "generate", "--records", "20", "--seed", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 20
    assert all(json.loads(line)["workload_id"] for line in lines)


def test_logs_generate_usage_errors_are_one_line(invoke: Invoke) -> None:
    result = invoke("logs", "generate", "--seed", "3")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[-1] == (
        "Error: the following arguments are required: --records, --out"
    )


def test_logs_generate_reports_an_unwritable_file(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("logs", "generate", "--records", "1", "--out", str(tmp_path / "no" / "f"))
    assert result.exit_code == ExitCode.ERROR
    assert "cannot write traffic" in result.stderr
