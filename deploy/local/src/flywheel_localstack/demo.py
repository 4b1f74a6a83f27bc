"""`make demo`: the whole flywheel on the local stack, in one command.

The stack comes up (Kafka, Elasticsearch, the database, the NMP emulator, the log shipper), the
six services start as daemons on their documented ports, a day of generated agent traffic goes
into the shipper's folder and is waited for until searchable, and a run over the tool-calling
workload with three candidates (one LoRA-customized) is requested, followed live and ends with
its leaderboard (the decision's headline sentence, production's reference row, each candidate's
cost ratio, monthly saving and p95 latency ratio, why the others fell short) and an HTML report
(.stack/reports/RUN.html: the same headline, scores with confidence intervals, estimated cost
against accuracy, the monthly saving against production, the run's timeline). The services keep running, so a second
`make demo` reuses them (and the same traffic, which ingest recognizes as already stored);
`python -m flywheel_localstack.demo --stop` stops them.

The demo's flywheel lives under the topic prefix `demo.` (its own topics, index and databases on
a stack other suites share); `FLYWHEEL_KAFKA__TOPIC_PREFIX=demo. flywheel watch RUN` follows one
of its runs from another terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from rich.live import Live

from flywheel_contracts.cli import render
from flywheel_contracts.cli.kafka import KafkaBus
from flywheel_contracts.cli.progress import RunProgress
from flywheel_contracts.cli.requests import current_user, run_requested
from flywheel_contracts.cli.runs import follow_run
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.report.drilldown import recommended_drilldown
from flywheel_contracts.run_config import DEMO_CANDIDATES, RunOverrides
from flywheel_contracts.traffic import ROUTER, TrafficConfig, generate_to_file
from flywheel_localstack.cli import format_status
from flywheel_localstack.reports import write_run_report
from flywheel_localstack.services import (
    Daemons,
    FlywheelSetup,
    Servers,
    ship,
    start_new_group_at_end,
    wait_indexed,
)
from flywheel_localstack.supervisor import Stack

DEMO_RECORDS = 5_000
DEMO_SEED = 2026
DEMO_CLIENT = "acme-support"
DEMO_NAME = "demo"
INDEX_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 600.0


class Stopwatch:
    """Where the demo's time goes, phase by phase (its budget: 3 minutes with warm caches)."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.laps: list[tuple[str, float]] = []

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.laps.append((phase, now - self.last))
        self.last = now

    def summary(self) -> str:
        phases = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in self.laps)
        return f"demo took {self.last - self.start:.1f}s ({phases})"


def demo_setup(stack: Stack) -> FlywheelSetup:
    s = stack.settings
    servers = Servers(
        kafka_bootstrap=s.kafka_bootstrap,
        mongo_url=s.mongo_url,
        elasticsearch_url=s.elasticsearch_url,
        nmp_url=s.nmp_url,
        kafka_security=s.kafka_security_fields(),
    )
    return FlywheelSetup(servers, name=DEMO_NAME)


def ship_traffic(stack: Stack, setup: FlywheelSetup) -> None:
    folder = stack.settings.shipper_folder
    staged = folder / f"demo-{DEMO_SEED}-{int(time.time())}.partial"
    config = TrafficConfig(client_ids=(DEMO_CLIENT,))
    summary = generate_to_file(staged, records=DEMO_RECORDS, seed=DEMO_SEED, config=config)
    target = ship(folder, staged)
    print(f"wrote {summary.records} records {summary.workloads} to {target}")
    seconds = wait_indexed(
        setup.servers.elasticsearch_url, setup.index, DEMO_CLIENT, DEMO_RECORDS, INDEX_TIMEOUT_S
    )
    print(f"{DEMO_RECORDS} records searchable in index {setup.index} after {seconds:.1f}s")


DEMO_OVERRIDES = RunOverrides(candidates=DEMO_CANDIDATES)


def run_and_follow(
    setup: FlywheelSetup,
    reports_dir: Path,
    evaluator_url: str | None = None,
    *,
    overrides: RunOverrides = DEMO_OVERRIDES,
    timeout_s: float = RUN_TIMEOUT_S,
    events: list[Envelope[Any]] | None = None,
) -> RunProgress:
    """Request a run over the tool-calling workload (the demo's, unless `overrides` say
    otherwise), show its progress until it ends, then its leaderboard (the headline,
    production's row and the savings) and the path of its HTML report. Every event read is
    appended to `events` when given."""
    bus = KafkaBus(setup.servers.kafka(setup.topic_prefix))
    envelope = run_requested(ROUTER, DEMO_CLIENT, overrides, requested_by=current_user())
    bus.publish(envelope)
    run_id: UUID | None = envelope.run_id
    assert run_id is not None
    count = len(overrides.candidates or ())
    print(f"\nrun {run_id} requested: workload {ROUTER}, {count or 'default'} candidates")
    console = render.console()
    events = [] if events is None else events
    with Live(console=console, refresh_per_second=4) as live:
        progress = follow_run(
            bus,
            run_id,
            timeout_s=timeout_s,
            on_change=lambda p: live.update(render.progress_view(p), refresh=True),
            on_invalid=lambda _record, exc: print(f"skipped an invalid event: {exc}"),
            on_event=events.append,
        )
    if progress.completed is not None:
        console.print(render.leaderboard_view(run_id, progress.completed))
    print(render.outcome_line(progress) or f"run {run_id} did not end within {timeout_s:.0f}s")
    # Written whatever the outcome: the timeline shows where a failed run stopped.
    drilldown = None
    if progress.completed is not None and evaluator_url is not None:
        try:
            drilldown = recommended_drilldown(evaluator_url, run_id, progress.completed)
        except (httpx.HTTPError, ValueError) as exc:
            print(f"no per-record answers from the evaluator: {exc}")
    report = write_run_report(run_id, events, reports_dir, drilldown=drilldown)
    print(f"\nHTML report (headline, scores, savings, timeline, leaderboard): {report}")
    return progress


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flywheel-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="stop the demo's services and exit")
    args = parser.parse_args(argv)
    stack = Stack()
    setup = demo_setup(stack)
    daemons = Daemons(setup, stack.settings.run_dir, stack.settings.logs_dir)
    if args.stop:
        stopped = daemons.stop()
        print(f"stopped {', '.join(stopped)}" if stopped else "no demo service was running")
        return 0

    watch = Stopwatch()
    started = stack.up()
    watch.lap("stack")
    print(f"stack ready ({'started ' + ', '.join(started) if started else 'already running'})")
    print(format_status(stack.status()))
    # Ingest reads the shipper's (un-prefixed) logs.raw; a new demo starts after what other
    # writers left there, a restarted one resumes where it stopped.
    start_new_group_at_end(setup.servers.kafka(), setup.group("ingest"), setup.raw_topic)
    launched = daemons.ensure_running()
    watch.lap("services")
    print(
        f"services ready ({'started ' + ', '.join(launched) if launched else 'already running'};"
        f" logs in {stack.settings.logs_dir}/{DEMO_NAME}-*.log)"
    )
    ship_traffic(stack, setup)
    watch.lap("traffic")
    progress = run_and_follow(setup, stack.settings.reports_dir, daemons.url("evaluator"))
    watch.lap("run")
    print(
        "\nthe stack and the services keep running; `make stack-status` shows the stack, "
        "`python -m flywheel_localstack.demo --stop` stops the services"
    )
    print(watch.summary())
    return 0 if progress.completed is not None else 1


if __name__ == "__main__":
    sys.exit(main())
