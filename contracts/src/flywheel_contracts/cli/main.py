"""The `flywheel` console script: thin click commands over the modules of this package."""

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import click
import httpx
from pydantic import ValidationError
from rich.live import Live

from flywheel_contracts.cli import dlq as dead_letters
from flywheel_contracts.cli import render, requests
from flywheel_contracts.cli.bus import Bus, Record, topic_stats
from flywheel_contracts.cli.errors import (
    CliError,
    ExitCode,
    RunFailedError,
    WatchTimeout,
    describe,
    invalid_as_usage,
)
from flywheel_contracts.cli.kafka import KafkaBus
from flywheel_contracts.cli.overrides import build_overrides, override_options
from flywheel_contracts.cli.progress import RunProgress
from flywheel_contracts.cli.runs import OUTCOME_TOPICS, RUN_TOPICS, follow_run, read_run_events
from flywheel_contracts.cli.settings import BOOTSTRAP_ENV, kafka_settings
from flywheel_contracts.cli.tail import tail_lines
from flywheel_contracts.envelope import encode
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.report import write_report
from flywheel_contracts.report.drilldown import recommended_drilldown
from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_contracts.traffic import cli as traffic_cli

_REQUEST_FIELDS = {
    "workload_id": "--workload",
    "client_id": "--client",
    "requested_by": "--requested-by",
    "reason": "--reason",
}


@dataclass
class Session:
    """What every command shares; tests hand in their own `make_bus`."""

    bootstrap: str | None = None
    make_bus: Callable[[KafkaSettings], Bus] = KafkaBus

    def bus(self) -> Bus:
        try:
            kafka = kafka_settings(self.bootstrap)
        except ValidationError as exc:
            raise CliError(f"invalid Kafka settings: {describe(exc)}") from None
        return self.make_bus(kafka)


def _warn_invalid(record: Record, exc: InvalidEvent) -> None:
    click.echo(f"skipped {record.topic}[{record.partition}]@{record.offset}: {exc}", err=True)


_run_argument = click.argument("run_id", metavar="RUN", type=click.UUID)
_requested_by_option = click.option(
    "--requested-by",
    default=requests.current_user,
    show_default="your login name",
    help="Who asks, for the audit trail.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--bootstrap",
    envvar=BOOTSTRAP_ENV,
    metavar="HOST:PORT[,...]",
    help=f"Kafka brokers [env {BOOTSTRAP_ENV}; default 127.0.0.1:9092].",
)
@click.pass_context
def cli(ctx: click.Context, bootstrap: str | None) -> None:
    """Flywheel: start, cancel, watch and report runs; inspect the event topics.

    Kafka security options come from FLYWHEEL_KAFKA__* (e.g. FLYWHEEL_KAFKA__SECURITY_PROTOCOL).
    """
    session = ctx.ensure_object(Session)
    if bootstrap is not None:
        session.bootstrap = bootstrap


@cli.command()
@click.option("--workload", "workload_id", required=True, help="Logged workload to study.")
@click.option("--client", "client_id", required=True, help="Client whose traffic is used.")
@override_options
@_requested_by_option
@click.pass_obj
def run(
    session: Session,
    /,
    workload_id: str,
    client_id: str,
    candidates: tuple[str, ...],
    customize: bool | None,
    requested_by: str | None,
    **overrides: Any,
) -> None:
    """Request a run; prints its id (alone, so scripts can capture it)."""
    with invalid_as_usage(_REQUEST_FIELDS):
        envelope = requests.run_requested(
            workload_id,
            client_id,
            build_overrides(overrides, candidates, customize),
            requested_by=requested_by,
        )
    session.bus().publish(envelope)
    click.echo(envelope.run_id)


@cli.command()
@_run_argument
@click.option("--reason", help="Why the run is stopped.")
@_requested_by_option
@click.pass_obj
def cancel(session: Session, run_id: UUID, reason: str | None, requested_by: str | None) -> None:
    """Cancel a run: every service drops its work, the janitor reclaims what it held."""
    with invalid_as_usage(_REQUEST_FIELDS):
        envelope = requests.run_cancelled(run_id, reason=reason, requested_by=requested_by)
    session.bus().publish(envelope)
    click.echo(f"cancellation of run {run_id} requested")


@cli.command()
@click.option("--reason", help="Why the flywheel is stopped.")
@_requested_by_option
@click.confirmation_option(prompt="Reclaim every deployment and job the flywheel holds?")
@click.pass_obj
def shutdown(session: Session, reason: str | None, requested_by: str | None) -> None:
    """Stop the flywheel: the janitor reclaims every live resource."""
    with invalid_as_usage(_REQUEST_FIELDS):
        envelope = requests.system_shutdown(reason=reason, requested_by=requested_by)
    session.bus().publish(envelope)
    click.echo("shutdown requested")


@cli.command()
@_run_argument
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Give up after S seconds [default: wait until the run ends].",
)
@click.pass_obj
def watch(session: Session, run_id: UUID, timeout: float | None) -> None:
    """Show a run's live progress; exit 0 when it completes, 3 when it fails, 4 on timeout."""
    bus = session.bus()
    console = render.console()
    live = Live(console=console, refresh_per_second=4)

    def show(progress: RunProgress) -> None:
        # Started on the first read, so a broker failure leaves no empty view behind.
        if not live.is_started:
            live.start()
        live.update(render.progress_view(progress), refresh=True)

    try:
        progress = follow_run(
            bus, run_id, timeout_s=timeout, on_change=show, on_invalid=_warn_invalid
        )
    finally:
        started = live.is_started
        live.stop()
        if started and not console.is_terminal:
            console.line()  # rich leaves the final view of a non-terminal without a newline
    if progress.completed is not None:
        click.echo(render.outcome_line(progress))
    elif progress.failed is not None:
        raise RunFailedError(render.outcome_line(progress))
    else:
        raise WatchTimeout(f"run {run_id} did not finish within {timeout:g}s")


@cli.command()
@_run_argument
@click.option("--json", "as_json", is_flag=True, help="Print the final event as JSON.")
@click.option(
    "--html",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="PATH",
    help="Also write the HTML report (headline, charts, savings, timeline, leaderboard) to PATH.",
)
@click.option(
    "--evaluator",
    "evaluator_url",
    envvar="FLYWHEEL_EVALUATOR_URL",
    default="http://127.0.0.1:8104",
    show_default=True,
    help="The evaluator, whose per-record answers of the recommended candidate the report shows.",
)
@click.pass_obj
def report(
    session: Session, run_id: UUID, as_json: bool, html: Path | None, evaluator_url: str
) -> None:
    """Print a finished run's leaderboard, or why it failed (exit 3)."""
    bus = session.bus()
    # The HTML report's timeline needs every stage's events; the text report only the outcome.
    events = read_run_events(bus, run_id, _warn_invalid, RUN_TOPICS if html else OUTCOME_TOPICS)
    progress = RunProgress(run_id)
    for envelope in events:
        progress.apply(envelope)
    if progress.outcome is None:
        if progress.requested is None:
            raise CliError(f"no run {run_id} was requested")
        cancelled = " (cancel requested)" if progress.cancelled is not None else ""
        raise CliError(f"run {run_id} has not finished{cancelled}; `flywheel watch` follows it")
    drilldown = None
    if progress.completed is not None and (not as_json or html is not None):
        try:
            drilldown = recommended_drilldown(evaluator_url, run_id, progress.completed)
        except (httpx.HTTPError, ValueError) as exc:
            click.echo(f"no per-record answers from {evaluator_url}: {exc}", err=True)
    if as_json:
        click.echo(encode(progress.outcome).decode())
    elif progress.completed is not None:
        out = render.console()
        out.print(render.leaderboard_view(run_id, progress.completed))
        if drilldown is not None:
            out.print(render.drilldown_view(drilldown))
    if html is not None:
        try:
            write_report(run_id, events, html, drilldown)
        except OSError as exc:
            raise CliError(f"cannot write the report: {exc}") from None
        # On stderr: stdout stays the leaderboard or the JSON a script reads.
        click.echo(f"HTML report written to {html}", err=True)
    if progress.failed is not None:
        raise RunFailedError(render.outcome_line(progress))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.pass_obj
def topics(session: Session, as_json: bool) -> None:
    """List topics with their partitions, end offsets and the lag of each flywheel.* group."""
    rows = topic_stats(session.bus().offsets())
    if as_json:
        click.echo(render.topics_json(rows))
    else:
        render.console().print(render.topics_view(rows))


@cli.command()
@click.argument("topic")
@click.option("--run", "run_id", type=click.UUID, help="Only this run's events.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message, not the end.")
@click.option(
    "--max", "limit", type=click.IntRange(min=1), metavar="N", help="Stop after N messages."
)
@click.option(
    "--follow/--no-follow", default=True, help="Wait for new messages, or stop at the end."
)
@click.pass_obj
def tail(
    session: Session,
    topic: str,
    run_id: UUID | None,
    from_beginning: bool,
    limit: int | None,
    follow: bool,
) -> None:
    """Print a topic's messages as JSON lines."""
    lines = tail_lines(
        session.bus(),
        topic,
        run_id=run_id,
        from_beginning=from_beginning,
        follow=follow,
        on_invalid=_warn_invalid,
    )
    for printed, line in enumerate(lines, start=1):
        click.echo(line)
        if printed == limit:
            break


@cli.group()
def dlq() -> None:
    """Dead letters: list, show and replay what a service could not handle.

    TOPIC is the origin topic (run.cancelled) or its dead-letter topic (run.cancelled.dlq).
    """


@dlq.command("list")
@click.argument("topic")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    metavar="N",
    help="Show the N most recent.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.pass_obj
def dlq_list(session: Session, topic: str, limit: int, as_json: bool) -> None:
    """One line per dead letter: offset, origin, reason/kind, size, error."""
    letters = dead_letters.read_dead_letters(session.bus(), topic)[-limit:]
    for line in dead_letters.list_lines(letters, as_json):
        click.echo(line)


@dlq.command("show")
@click.argument("topic")
@click.argument("offset", type=click.IntRange(min=0))
@click.pass_obj
def dlq_show(session: Session, topic: str, offset: int) -> None:
    """A dead letter's key, headers (why and where it failed) and value."""
    letters = dead_letters.read_dead_letters(session.bus(), topic)
    [letter] = dead_letters.pick(letters, [offset], topic)
    click.echo(dead_letters.show_text(letter))


@dlq.command("replay")
@click.argument("topic")
@click.argument("offsets", metavar="OFFSET...", nargs=-1, required=True, type=click.IntRange(min=0))
@click.pass_obj
def dlq_replay(session: Session, topic: str, offsets: tuple[int, ...]) -> None:
    """Re-publish dead letters to their origin topic (marked `replay.from`); an event that was
    handled already is skipped by the services as a duplicate."""
    bus = session.bus()
    letters = dead_letters.pick(dead_letters.read_dead_letters(bus, topic), offsets, topic)
    for line in dead_letters.replay(bus, topic, letters):
        click.echo(line)


@cli.group()
def logs() -> None:
    """Generated log traffic for demos and tests."""


@logs.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def generate(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Write traffic as JSONL: --records N --seed S --out FILE ... (see --help)."""
    # The traffic generator parses its own options: one definition, whichever entry point.
    # Its stderr is held back so that a usage error comes out as this CLI's one line.
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            code = traffic_cli.main(list(args))
    except SystemExit as exit_:
        if exit_.code in (0, None):  # --help
            raise
        *_, last = held.getvalue().strip().splitlines() or [""]
        raise click.UsageError(last.partition(": error: ")[2] or last) from None
    except OSError as exc:
        raise CliError(f"cannot write traffic: {exc}") from None
    click.echo(held.getvalue(), err=True, nl=False)
    ctx.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: every error is one line on stderr and an exit code."""
    try:
        result = cli.main(args=argv, prog_name="flywheel", standalone_mode=False)
    except click.ClickException as exc:
        message = " ".join(exc.format_message().split())
        click.echo(f"flywheel: error: {message}", err=True)
        return exc.exit_code
    except click.Abort as exc:
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
        click.echo("flywheel: interrupted" if interrupted else "flywheel: aborted", err=True)
        return ExitCode.INTERRUPTED if interrupted else ExitCode.ERROR
    return result if isinstance(result, int) else ExitCode.OK
