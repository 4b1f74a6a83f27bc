"""`make real-model`: a run whose external candidate is a real model served on this machine's CPU.

Qwen2.5-Coder-0.5B-Instruct is installed on first use and served by llama-server on 127.0.0.1
behind a random key, which only the evaluator gets, registered with that one base URL. The stack
comes up unless it is running; the six services start as child processes on free ports under
the name `real-model` (topics, index and databases of their own, beside the demo's); the demo's
generated traffic is shipped and indexed; and a run over the tool-calling workload compares one
NMP candidate (the emulator's) with the real model, base and ICL, on 20 records. The
leaderboard follows, then per candidate and evaluation the strict and lenient scores with their
95% intervals, latency, completion tokens per second and cost. Everything this command started
is stopped at the end, on failure and on SIGTERM too (a stack it found running is left running).

`--serve` installs and serves the model until Ctrl-C, printing its URL and key, for trying it
by hand.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from rich.table import Table

from flywheel_contracts.cli import render
from flywheel_contracts.cli.progress import RunProgress
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import EvalDone, Leaderboard, MetricScore
from flywheel_contracts.run_config import (
    CandidateConfig,
    EvalType,
    ExternalEndpoint,
    RunOverrides,
    ToolChoice,
)
from flywheel_localstack.demo import (
    DEMO_SEED,
    demo_setup,
    run_and_follow,
    ship_traffic,
)
from flywheel_localstack.real_model.install import SERVED_MODEL, install
from flywheel_localstack.real_model.server import LlamaServer
from flywheel_localstack.services import Flywheel, FlywheelSetup, start_new_group_at_end
from flywheel_localstack.supervisor import Stack

NAME = "real-model"
NMP_CANDIDATE = "meta/llama-3.2-1b-instruct"
KEY_NAME = "local"
"""The name the run gives the endpoint's key; the evaluator holds the key under it."""
# ICL prompts (the tools, two examples and the record: 2-3k tokens) take 10-40 s each on two
# cores; 20 records of base and ICL fit in about ten minutes.
EVAL_SIZE = 20
# A call fits in a few dozen tokens; the cap bounds an answer that rambles on after its call
# (at 10-30 tokens/s on two cores, each wasted token is felt).
MAX_TOKENS = 128
# A nominal price for a 0.5B model, of the order providers ask for their smallest models (a few
# cents per million tokens): the cost column needs one, and this CPU's cost is not measured.
PRICE_PER_1K_INPUT = 0.00002
PRICE_PER_1K_OUTPUT = 0.00004
NMP_PRICE_PER_1K = 0.0001
# Base and ICL on two CPU cores: ICL prompts of several thousand tokens take seconds each.
RUN_TIMEOUT_S = 1800.0
STRICT = "function_name_and_args_accuracy"
LENIENT = "function_name_and_args_accuracy_lenient"


def candidates(base_url: str, concurrency: int = 2) -> tuple[CandidateConfig, ...]:
    """The emulator's smallest NMP model and the real one, reached at `base_url`."""
    return (
        CandidateConfig(model_name=NMP_CANDIDATE, price_per_1k_tokens=NMP_PRICE_PER_1K),
        CandidateConfig(
            model_name=SERVED_MODEL,
            endpoint=ExternalEndpoint(
                base_url=base_url,
                api_key=KEY_NAME,
                # llama.cpp enforces "required" with a grammar that lets an answer end only after
                # a `<tool_call>` tag, which this model never writes (it answers with bare JSON):
                # every answer would run to its token cap. With "auto" it answers its JSON.
                tool_choice=ToolChoice.AUTO,
                concurrency=concurrency,
                timeout_seconds=120,
            ),
            price_per_1k_input_tokens=PRICE_PER_1K_INPUT,
            price_per_1k_output_tokens=PRICE_PER_1K_OUTPUT,
        ),
    )


def run_overrides(base_url: str, eval_size: int, concurrency: int = 2) -> RunOverrides:
    # llama.cpp accepts the tool schemas' `\d` only by dropping the pattern from its grammar
    # (older builds refuse it): the compat rewrite sends every candidate the same explicit classes.
    return RunOverrides(
        candidates=candidates(base_url, concurrency),
        eval_types=(EvalType.BASE, EvalType.ICL),
        tool_schema_compat=True,
        eval_size=eval_size,
        random_seed=DEMO_SEED,
    )


def evaluator_settings(key: str, base_url: str, max_tokens: int) -> dict[str, object]:
    """The evaluator's settings, as `Flywheel(extra=...)` takes them: the key for the one URL it
    may be sent to (FLYWHEEL_EVALUATOR_ENDPOINT_KEYS__LOCAL__KEY and __BASE_URL) and the answers'
    length cap (FLYWHEEL_EVALUATOR_CHAT__MAX_TOKENS)."""
    prefix = f"endpoint_keys__{KEY_NAME}__"
    return {f"{prefix}key": key, f"{prefix}base_url": base_url, "chat__max_tokens": max_tokens}


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultRow:
    candidate: str
    eval_type: EvalType
    strict: MetricScore | None
    lenient: MetricScore | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    tokens_per_second: float | None
    cost_per_1k_requests_usd: float | None
    error: str | None = None


def result_rows(
    evaluations: Iterable[EvalDone], leaderboard: Leaderboard | None
) -> list[ResultRow]:
    """One row per candidate and evaluation, from the last eval.done of each (tokens per second
    is only there) and the leaderboard's cost, in the order the evaluations ended."""
    latest = {(done.candidate_model, done.eval_type): done for done in evaluations}
    costs = {
        (entry.candidate_model, entry.eval_type): entry.cost_per_1k_requests_usd
        for entry in (leaderboard.entries if leaderboard is not None else ())
    }
    rows = []
    for (model, eval_type), done in latest.items():
        scores = {score.name: score for score in done.scores}
        usage = done.usage
        rows.append(
            ResultRow(
                candidate=model,
                eval_type=eval_type,
                strict=scores.get(STRICT),
                lenient=scores.get(LENIENT),
                latency_p50_ms=usage.latency_p50_ms if usage else None,
                latency_p95_ms=usage.latency_p95_ms if usage else None,
                tokens_per_second=usage.completion_tokens_per_second if usage else None,
                cost_per_1k_requests_usd=costs.get((model, eval_type)),
                error=None if done.error is None else f"{done.error.kind}: {done.error.message}",
            )
        )
    return rows


def results_table(rows: Sequence[ResultRow]) -> Table:
    table = Table(title="real model against NMP: tool-calling accuracy (name and arguments)")
    for column in (
        "candidate",
        "eval",
        "strict [95% CI]",
        "lenient [95% CI]",
        "p50 / p95 ms",
        "tokens/s",
        "$ per 1k req",
    ):
        table.add_column(column)
    for row in rows:
        if row.error is not None:
            table.add_row(row.candidate, row.eval_type, row.error, "", "", "", "")
            continue
        table.add_row(
            row.candidate,
            row.eval_type,
            _score(row.strict),
            _score(row.lenient),
            _latency(row.latency_p50_ms, row.latency_p95_ms),
            "-" if row.tokens_per_second is None else f"{row.tokens_per_second:.1f}",
            "-" if row.cost_per_1k_requests_usd is None else f"{row.cost_per_1k_requests_usd:.4f}",
        )
    return table


def run_with_results(
    setup: FlywheelSetup,
    reports_dir: Path,
    evaluator_url: str,
    overrides: RunOverrides,
    timeout_s: float,
) -> tuple[RunProgress, list[Envelope[Any]]]:
    """`run_and_follow` the run, then print the real model's results table; the run's progress
    and every event read."""
    events: list[Envelope[Any]] = []
    progress = run_and_follow(
        setup, reports_dir, evaluator_url, overrides=overrides, timeout_s=timeout_s, events=events
    )
    evaluations = [e.payload for e in events if isinstance(e.payload, EvalDone)]
    leaderboard = progress.completed.leaderboard if progress.completed is not None else None
    render.console().print(results_table(result_rows(evaluations, leaderboard)))
    return progress, events


def _score(score: MetricScore | None) -> str:
    if score is None:
        return "-"
    failed = f", {score.failed} failed" if score.failed else ""
    return f"{score.value:.2f} [{score.ci_low:.2f}, {score.ci_high:.2f}] n={score.n}{failed}"


def _latency(p50: float | None, p95: float | None) -> str:
    if p50 is None or p95 is None:
        return "-"
    return f"{p50:.0f} / {p95:.0f}"


# -- the run -----------------------------------------------------------------------------------


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # Unwinds through the with-blocks, so what was started is stopped as on Ctrl-C.
    raise SystemExit(143)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flywheel-real-model", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--eval-size", type=int, default=EVAL_SIZE, help="records evaluated")
    parser.add_argument(
        "--parallel", type=int, default=2, help="server slots = the endpoint's concurrency"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=MAX_TOKENS, help="the evaluator's cap on an answer"
    )
    parser.add_argument("--serve", action="store_true", help="only serve the model until Ctrl-C")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    model = install()
    key = secrets.token_urlsafe(24)
    stack = Stack()
    with ExitStack() as started:
        server = started.enter_context(
            LlamaServer(model, api_key=key, parallel=args.parallel, log_dir=stack.settings.logs_dir)
        )
        print(
            f"llama-server {server.base_url} serves {server.model_id} (pid {server.pid}, "
            f"{server.rss_bytes() / 1e6:.0f} MB, log {server.log_path})"
        )
        if args.serve:
            print(f"key: {key}\nCtrl-C stops it")
            with suppress(KeyboardInterrupt):
                signal.pause()
            return 0
        servers = stack.up()
        started.callback(stack.down, servers)
        print(f"stack ready ({'started ' + ', '.join(servers) if servers else 'already running'})")
        setup = replace(demo_setup(stack), name=NAME)
        start_new_group_at_end(setup.servers.kafka(), setup.group("ingest"), setup.raw_topic)
        flywheel = Flywheel(
            setup,
            stack.settings.logs_dir / NAME,
            extra={"evaluator": evaluator_settings(key, server.base_url, args.max_tokens)},
        )
        started.callback(flywheel.stop)
        flywheel.start()
        print(f"services ready (logs in {stack.settings.logs_dir / NAME})")
        ship_traffic(stack, setup)
        overrides = run_overrides(server.base_url, args.eval_size, args.parallel)
        progress, _ = run_with_results(
            setup, stack.settings.reports_dir, flywheel["evaluator"].url, overrides, RUN_TIMEOUT_S
        )
        print(f"llama-server at the end: {server.rss_bytes() / 1e6:.0f} MB resident")
    return 0 if progress.completed is not None else 1


if __name__ == "__main__":
    sys.exit(main())
