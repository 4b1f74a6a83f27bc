"""A customization job that trains for real: started with a capped plan, advanced from its
trainer's progress file every scheduler tick, converted, registered as an adapter, completed.

Failures end the job `failed` with the end of the process's log in its status logs; a job whose
process is gone (the emulator restarted: its sweep killed the old trainer) fails too, since a
half-trained adapter cannot be resumed. Cancelling stops the process group (customization.py).
"""

from __future__ import annotations

import logging
from typing import Any

from flywheel_nmp_emulator.real.adapters import AdapterError, register_adapter
from flywheel_nmp_emulator.real.training.chat_format import training_examples
from flywheel_nmp_emulator.real.training.plan import training_plan
from flywheel_nmp_emulator.real.training.runs import TrainingRun, TrainingRuns
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import (
    CustomizationJob,
    LossPoint,
    RealTraining,
    StatusLog,
)

log = logging.getLogger(__name__)


class TrainingStartError(ValueError):
    """The job cannot train (no usable record)."""


def trains(emu: Emulator, job: CustomizationJob) -> bool:
    """Whether this job trains for real: real training is on and it customizes the real model."""
    return emu.training is not None and job.base_model == emu.settings.real.model_id


def start(emu: Emulator, job: CustomizationJob, records: list[dict[str, Any]]) -> str:
    """Spawn the job's trainer; what it trains, for the job's status log."""
    runs = _runs(emu)
    examples = list(training_examples(records))
    try:
        plan = training_plan(
            job.hyperparameters,
            len(examples),
            max_steps=emu.settings.real.max_train_steps,
            max_batch_size=emu.settings.real.max_train_batch_size,
        )
    except ValueError as exc:
        raise TrainingStartError(str(exc)) from exc
    job.real = RealTraining(
        total_steps=plan.total_steps,
        steps_per_epoch=plan.steps_per_epoch,
        batch_size=plan.batch_size,
    )
    job.steps_per_epoch = plan.steps_per_epoch
    run = runs.start(job.id, examples, plan, emu.settings.seed)
    return f"real LoRA training (pid {run.process.pid}): {plan.describe()}"


def advance(
    emu: Emulator, job: CustomizationJob, now: float
) -> tuple[bool, str | None, str | None]:
    """(state changed, failure detail, completion detail) for a running job."""
    runs = _runs(emu)
    real = job.real
    assert real is not None
    run = runs.get(job.id)
    if run is None:
        return True, "the training process was lost: the emulator restarted during training", None
    changed = _read_steps(run, real, now)
    plan = run.reader.progress.plan
    if plan is not None and not real.loaded:
        real.loaded = True
        detail = (
            f"model loaded in {plan.get('load_seconds', 0):.0f}s; {plan.get('examples')} examples"
            f", {plan.get('skipped', 0)} left out as longer than the sequence limit"
        )
        job.status_logs.append(StatusLog(updated_at=now, message="Training", detail=detail))
        changed = True
    code = run.process.exit_code()
    if code is None:
        return changed, None, None
    if run.phase == "training":
        if code != 0 or not run.reader.progress.saved:
            runs.forget(job.id)
            return True, _died("training", run, code), None
        runs.convert(job.id)
        real.phase = "converting"
        real.converting_since = now
        return True, None, None
    runs.forget(job.id)
    if code != 0 or not run.files.gguf.is_file():
        return True, _died("converting the adapter to GGUF", run, code), None
    if job.output_model:
        try:
            register_adapter(emu.state, job.output_model, run.files.gguf)
        except AdapterError as exc:
            return True, f"the adapter could not be served: {exc}", None
    last = real.losses[-1].value if real.losses else float("nan")
    per_step = f"{real.seconds_per_step:.1f}" if real.seconds_per_step is not None else "?"
    converted = now - real.converting_since if real.converting_since is not None else 0.0
    detail = (
        f"{real.steps_done} steps ({real.epochs_done:.2f} epochs) at {per_step} s a step, "
        f"final loss {last:.4f}; adapter converted in {converted:.0f}s to {run.files.gguf} "
        f"({run.files.gguf.stat().st_size / 1e6:.1f} MB)"
    )
    return True, None, detail


def _read_steps(run: TrainingRun, real: RealTraining, now: float) -> bool:
    steps = run.reader.read()
    for step in steps:
        real.losses.append(LossPoint(step=step.step, epoch=step.epoch, value=step.loss, at=now))
        real.steps_done = step.step
    if steps:
        done = run.reader.progress.steps
        real.seconds_per_step = sum(s.seconds for s in done) / len(done)
    return bool(steps)


def _died(what: str, run: TrainingRun, code: int) -> str:
    return (
        f"{what} failed (exit {code}); the end of {run.process.log_path}:\n{run.process.log_tail()}"
    )


def stop(emu: Emulator, job: CustomizationJob) -> None:
    """Stop the job's process group (cancel, failure): its CPU is freed with its GPUs."""
    if emu.training is not None:
        emu.training.stop(job.id)


def _runs(emu: Emulator) -> TrainingRuns:
    assert emu.training is not None
    return emu.training
