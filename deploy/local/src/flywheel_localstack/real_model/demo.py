"""`make real-demo`: the whole flywheel with a real model, trained for real, on this machine's CPU.

Qwen2.5-Coder-0.5B-Instruct and llama-server (as `make real-model` installs them) and the LoRA
trainer's venv (PyTorch, transformers, peft: trainer.py) are installed on first use, sizes said
first. The stack comes up unless it is running. An NMP emulator of its own starts in real mode
(the stack's emulator, which other suites share, keeps its heuristic models): a deployment of
the real model is a llama-server process, a customization job of it trains a LoRA adapter in a
subprocess and serves it with `--lora`. The six services start as child processes under the name
`real-demo`, the demo's generated traffic is shipped and indexed, and one run over the
tool-calling workload evaluates the real model base, with in-context examples and customized.
It ends with the leaderboard, the scores with their 95% intervals, the training curve (the
customization job's loss per step, which the HTML report does not carry) and the wall time of
each phase. Everything it started is stopped at the end, on failure and on SIGTERM too.

The judge-based metric has no CPU stand-in for the blueprint's 70B judge: this emulator serves
no judge, and the metric is reported as unavailable rather than scored by a heuristic.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import CustomizationStarted, EvalDone
from flywheel_contracts.run_config import CandidateConfig, EvalType, RunOverrides
from flywheel_localstack.demo import (
    DEMO_SEED,
    Stopwatch,
    demo_setup,
    ship_traffic,
)
from flywheel_localstack.real_model.emulator import emulator_env
from flywheel_localstack.real_model.install import SERVED_MODEL, install
from flywheel_localstack.real_model.run import (
    PRICE_PER_1K_INPUT,
    PRICE_PER_1K_OUTPUT,
    _stop_on_sigterm,
    run_with_results,
)
from flywheel_localstack.real_model.trainer import install_trainer
from flywheel_localstack.services import Flywheel, start_new_group_at_end
from flywheel_localstack.supervisor import Stack
from flywheel_nmp_emulator.testing import emulator_service, free_port

NAME = "real-demo"
EVAL_SIZE = 20
# The emulator's laptop-profile cap (NMP_EMULATOR_REAL__MAX_TRAIN_STEPS); 30 s to 3 min a step
# of the router workload's prompts (twelve tools) on two cores, quiet to busy.
TRAIN_STEPS = 60
MAX_TOKENS = 128
# The run's learning rate: a capped run sees a few dozen examples once, where the blueprint's
# 1e-4 assumes epochs over hundreds; LoRA is commonly trained at up to 1e-3.
LEARNING_RATE = 4e-4
# Installing, deploying, base and ICL evaluations, training and the customized evaluation.
RUN_TIMEOUT_S = 3 * 3600.0
# The only model it serves without a deployment: the embedding model (ICL example selection).
# No judge: a heuristic one would put made-up numbers beside the real model's.
EMBEDDING_MODEL = "nvidia/llama-3.2-nv-embedqa-1b-v2"


def candidate() -> CandidateConfig:
    """The real model, deployed through NMP (the emulator's llama-server) and customized."""
    return CandidateConfig(
        model_name=SERVED_MODEL,
        customization_enabled=True,
        # NMP's target reference: the emulator trains the model the part before `@` names.
        customization_target=f"{SERVED_MODEL}@2.0",
        price_per_1k_input_tokens=PRICE_PER_1K_INPUT,
        price_per_1k_output_tokens=PRICE_PER_1K_OUTPUT,
    )


def run_overrides(eval_size: int, learning_rate: float) -> RunOverrides:
    # tool_schema_compat: llama.cpp accepts the schemas' `\d` only by dropping the pattern.
    return RunOverrides(
        candidates=(candidate(),),
        eval_types=(EvalType.BASE, EvalType.ICL, EvalType.CUSTOMIZED),
        tool_schema_compat=True,
        eval_size=eval_size,
        random_seed=DEMO_SEED,
        learning_rate=learning_rate,
    )


def evaluator_settings(max_tokens: int) -> dict[str, object]:
    """Two requests at a time, as the server has two slots; a queued ICL prompt of a few
    thousand tokens takes tens of seconds on two cores, hence the long deadline."""
    return {
        "chat__max_tokens": max_tokens,
        "chat__concurrency": 2,
        "chat__request_timeout_s": 300,
    }


def emulator_extra_env(
    model_env: dict[str, str], run_dir: Path, max_train_steps: int
) -> dict[str, str]:
    return {
        **model_env,
        "NMP_EMULATOR_REAL__MAX_TRAIN_STEPS": str(max_train_steps),
        "NMP_EMULATOR_ALWAYS_SERVED_MODELS": f'["{EMBEDDING_MODEL}"]',
        "NMP_EMULATOR_LOG_LEVEL": "warning",
        "NMP_EMULATOR_REAL__RUN_DIR": str(run_dir),
    }


# -- the training curve ------------------------------------------------------------------------


def training_curve(status: dict[str, Any]) -> list[tuple[int, float]]:
    """(step, loss) of every step a customization job's status reports."""
    metrics = (status.get("metrics") or {}).get("metrics") or {}
    return [
        (int(point["step"]), float(point["value"]))
        for point in metrics.get("train_loss") or ()
        if point.get("step") is not None and point.get("value") is not None
    ]


def curve_lines(curve: Sequence[tuple[int, float]], width: int = 50) -> list[str]:
    """The curve as text: one bar per step, its length the loss against the highest."""
    if not curve:
        return ["(no step reported)"]
    top = max(loss for _, loss in curve) or 1.0
    return [
        f"{step:4d}  {loss:8.4f}  {'#' * max(1, round(width * loss / top))}" for step, loss in curve
    ]


def judge_note(evaluations: Sequence[EvalDone]) -> list[str]:
    """The judge-based scores, said to be unavailable where a record needed the judge: the
    evaluator decides the exact cases itself (no call: 0), and the rest has no judge to ask."""
    notes = []
    for done in evaluations:
        for score in done.scores:
            if _judged(score.name) and score.failed:
                notes.append(
                    f"{done.candidate_model} {done.eval_type}: {score.name} unavailable "
                    f"({score.failed} of {score.n} records needed the judge)"
                )
    return notes


def _judged(metric: str) -> bool:
    return metric in ("tool_calling_correctness", "similarity")


def _print_training(nmp_url: str, events: Sequence[Envelope[Any]]) -> None:
    jobs = [e.payload.job_id for e in events if isinstance(e.payload, CustomizationStarted)]
    for job_id in jobs:
        status = httpx.get(f"{nmp_url}/v1/customization/jobs/{job_id}/status", timeout=10).json()
        curve = training_curve(status)
        print(
            f"\ntraining curve of {job_id} ({status.get('status')}, {status.get('steps_completed')}"
            f" steps in {status.get('elapsed_time') or 0:.0f}s; loss per step):"
        )
        print("\n".join(curve_lines(curve)))
        for log in status.get("status_logs") or ():
            print(f"  {log.get('message')}: {log.get('detail')}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flywheel-real-demo", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--eval-size", type=int, default=EVAL_SIZE, help="records evaluated")
    parser.add_argument(
        "--train-steps", type=int, default=TRAIN_STEPS, help="the training's cap on steps"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=MAX_TOKENS, help="the evaluator's cap on an answer"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=LEARNING_RATE, help="the run's learning rate"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    overrides = run_overrides(args.eval_size, args.learning_rate)
    watch = Stopwatch()
    model = install()
    trainer = install_trainer()
    watch.lap("install")
    stack = Stack()
    with ExitStack() as started:
        servers = stack.up()
        started.callback(stack.down, servers)
        watch.lap("stack")
        print(f"stack ready ({'started ' + ', '.join(servers) if servers else 'already running'})")
        home = stack.settings.state_dir / NAME
        home.mkdir(parents=True, exist_ok=True)
        (home / "nmp-state.json").unlink(missing_ok=True)
        emulator = emulator_service(
            home / "nmp-state.json",
            free_port(),
            gpus=8,
            extra_env=emulator_extra_env(
                emulator_env(model, trainer), home / "llama", args.train_steps
            ),
        )
        emulator.log_path = home / "nmp-emulator.log"
        emulator.start(ready_within_s=60)
        started.callback(emulator.stop, 60.0)
        print(f"NMP emulator in real mode on {emulator.url} (log and runs in {home})")
        base = demo_setup(stack)
        # A name of its own each time: the services' databases would otherwise still hold the
        # jobs of a previous demo's emulator, which is gone with its state.
        setup = replace(
            base,
            name=f"{NAME}-{int(time.time())}",
            servers=replace(base.servers, nmp_url=emulator.url),
        )
        start_new_group_at_end(setup.servers.kafka(), setup.group("ingest"), setup.raw_topic)
        flywheel = Flywheel(
            setup,
            stack.settings.logs_dir / NAME,
            extra={"evaluator": evaluator_settings(args.max_tokens)},
        )
        started.callback(flywheel.stop)
        flywheel.start()
        watch.lap("services")
        print(f"services ready (logs in {stack.settings.logs_dir / NAME})")
        ship_traffic(stack, setup)
        watch.lap("traffic")
        progress, events = run_with_results(
            setup, stack.settings.reports_dir, flywheel["evaluator"].url, overrides, RUN_TIMEOUT_S
        )
        watch.lap("run")
        evaluations = [e.payload for e in events if isinstance(e.payload, EvalDone)]
        for note in judge_note(evaluations) or ["judge-based metrics: none reported"]:
            print(f"{note} (no CPU stand-in for the 70B judge)")
        _print_training(emulator.url, events)
        print(watch.summary())
    return 0 if progress.completed is not None else 1


if __name__ == "__main__":
    sys.exit(main())
