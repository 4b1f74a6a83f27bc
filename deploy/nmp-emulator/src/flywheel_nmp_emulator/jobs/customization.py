"""Customization (LoRA) jobs: created -> [pending: NotEnoughResources] -> running -> completed |
failed | cancelled. Training reads the uploaded training file and produces an adapter: a
heuristic one after the configured training time, or, for the real model with real training on,
a real LoRA adapter from a trainer process (real/training/), the job following its steps."""

from __future__ import annotations

import math
from functools import partial

from flywheel_nmp_emulator.jobs.files import DatasetFileError, find_file
from flywheel_nmp_emulator.jobs.fitting import Fitted
from flywheel_nmp_emulator.models.lora import Adapter, count_lines, read_jsonl
from flywheel_nmp_emulator.real.training import lifecycle as real_training
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import CustomizationJob, StatusLog

TRAIN_FILE = "training/train_data.jsonl"
VALIDATION_FILE = "validation/val_data.jsonl"
NOT_ENOUGH_RESOURCES = "NotEnoughResources"


def holder(job: CustomizationJob) -> str:
    return f"customization:{job.id}"


def adapter_key(job: CustomizationJob) -> str:
    return f"adapters/{job.id}.json"


def _log(job: CustomizationJob, now: float, message: str, detail: str = "") -> None:
    job.status_logs.append(StatusLog(updated_at=now, message=message, detail=detail))


def _fail(emu: Emulator, job: CustomizationJob, now: float, detail: str) -> None:
    job.status = "failed"
    job.finished_at = now
    _log(job, now, "Failed", detail)
    emu.gpus.release(holder(job))
    emu.store.record("customization", job.id, "failed", detail)


def _training_data(emu: Emulator, job: CustomizationJob) -> bytes:
    data = find_file(emu.store, job.dataset_namespace, job.dataset_name, TRAIN_FILE, "training")
    if data is None:
        raise DatasetFileError(
            f"no training file ({TRAIN_FILE}) in dataset {job.dataset_namespace}/{job.dataset_name}"
        )
    return data


def _start(emu: Emulator, job: CustomizationJob, now: float) -> None:
    """Grant-time bookkeeping. The stand-in only counts the training file's lines here (its
    fit parses them off the loop, see fitting.py); a real trainer needs its examples now."""
    try:
        data = _training_data(emu, job)
        records = read_jsonl(data) if real_training.trains(emu, job) else None
    except (DatasetFileError, ValueError) as exc:
        _fail(emu, job, now, f"Training data could not be read: {exc}")
        return
    count = len(records) if records is not None else count_lines(data)
    batch_size = max(int(job.hyperparameters.get("batch_size") or 16), 1)
    job.train_records = count
    job.steps_per_epoch = max(math.ceil(count / batch_size), 1)
    job.planned_seconds = job.epochs * emu.timings.training_seconds_per_epoch
    detail = f"training on {count} records, {job.gpus} GPU(s)"
    if records is not None:
        try:
            detail = f"{detail}; {real_training.start(emu, job, records)}"
        except real_training.TrainingStartError as exc:
            _fail(emu, job, now, f"Training data could not be used: {exc}")
            return
    job.status = "running"
    job.started_at = now
    _log(job, now, "Running", detail)
    emu.store.record("customization", job.id, "started", f"{job.gpus} GPU(s)")


def _fit(train: bytes, validation: bytes | None) -> Fitted:
    """Runs on the fitting thread: parse, fit, and score on the validation file."""
    adapter = Adapter.train(read_jsonl(train))
    accuracy = adapter.accuracy(read_jsonl(validation)) if validation else None
    return Fitted(adapter.to_json(), len(adapter.examples), accuracy)


def _finish(emu: Emulator, job: CustomizationJob, now: float) -> bool:
    """Fit the job's adapter off the loop and complete the job once it is fitted; False while
    the fit is still running."""
    if not emu.fits.started(job.id):
        if emu.faults.job_fails(
            "customization", f"{job.base_model} {job.output_model} {job.config}"
        ):
            _fail(
                emu, job, now, "Training failed: the trainer exited with an error (injected fault)"
            )
            return True
        try:
            train = _training_data(emu, job)
            validation = find_file(
                emu.store, job.dataset_namespace, job.dataset_name, VALIDATION_FILE, "validation"
            )
        except DatasetFileError as exc:
            _fail(emu, job, now, f"Training data could not be read: {exc}")
            return True
        emu.fits.start(job.id, partial(_fit, train, validation))
    try:
        fitted = emu.fits.outcome(job.id)
    except ValueError as exc:
        _fail(emu, job, now, f"Training data could not be read: {exc}")
        return True
    except Exception as exc:  # whatever ended the fit ends the job, said in its status
        _fail(emu, job, now, f"Training failed: {exc}")
        return True
    if fitted is None:
        return False
    key = adapter_key(job)
    emu.store.blobs.put(key, fitted.adapter_json)
    model = emu.state.models.get(job.output_model)
    if model is not None:
        model.adapter_key = key
        model.trained_at = now
    detail = f"{fitted.examples} examples learned"
    if fitted.validation_accuracy is not None:
        detail += f", validation function-name accuracy {fitted.validation_accuracy:.3f}"
    job.status = "completed"
    job.finished_at = now
    _log(job, now, "Completed", detail)
    emu.gpus.release(holder(job))
    emu.store.record("customization", job.id, "completed", detail)
    return True


def progress(job: CustomizationJob, now: float) -> float:
    """Fraction of the planned training time elapsed, or of a real job's steps done (1.0 once
    completed)."""
    if job.status == "completed":
        return 1.0
    if job.real is not None:
        return job.real.steps_done / job.real.total_steps if job.real.total_steps else 0.0
    if job.status != "running" or job.started_at is None:
        return 0.0
    if job.planned_seconds <= 0:
        return 1.0
    return min((now - job.started_at) / job.planned_seconds, 1.0)


def advance(emu: Emulator, now: float) -> bool:
    changed = False
    gpus = emu.gpus
    for job in emu.state.customization_jobs.values():
        if job.status in ("created", "pending"):
            if gpus.holds(holder(job)):
                _start(emu, job, now)
                changed = True
            elif job.status == "created" or (
                job.status_logs and job.status_logs[-1].message != NOT_ENOUGH_RESOURCES
            ):
                job.status = "pending"
                _log(job, now, NOT_ENOUGH_RESOURCES, gpus.waiting_message(holder(job)))
                changed = True
        if job.status == "running" and job.real is not None:
            changed |= _advance_real(emu, job, now)
        elif job.status == "running" and progress(job, now) >= 1.0:
            changed |= _finish(emu, job, now)
    # A fit whose job is gone (an /emulator/reset) or was cancelled is dropped.
    jobs = emu.state.customization_jobs
    emu.fits.forget(
        job_id
        for job_id in emu.fits.fitting()
        if job_id not in jobs or jobs[job_id].status != "running"
    )
    if emu.training is not None:
        # A trainer whose job is gone (an /emulator/reset) or no longer running stops too.
        for job_id in emu.training.job_ids():
            owner = emu.state.customization_jobs.get(job_id)
            if owner is None or owner.status != "running":
                emu.training.stop(job_id)
    return changed


def _advance_real(emu: Emulator, job: CustomizationJob, now: float) -> bool:
    if emu.training is None:
        _fail(emu, job, now, "Training stopped: the emulator restarted without real training")
        return True
    changed, failure, done = real_training.advance(emu, job, now)
    if failure is not None:
        real_training.stop(emu, job)
        _fail(emu, job, now, f"Training failed: {failure}")
    elif done is not None:
        if emu.faults.job_fails(
            "customization", f"{job.base_model} {job.output_model} {job.config}"
        ):
            _fail(
                emu, job, now, "Training failed: the trainer exited with an error (injected fault)"
            )
            failed_model = emu.state.models.get(job.output_model)
            if failed_model is not None:
                failed_model.lora_gguf = None
            return True
        model = emu.state.models.get(job.output_model)
        if model is not None:
            model.trained_at = now
        job.status = "completed"
        job.finished_at = now
        _log(job, now, "Completed", done)
        emu.gpus.release(holder(job))
        emu.store.record("customization", job.id, "completed", done)
    return changed


def cancel(emu: Emulator, job: CustomizationJob, now: float) -> None:
    if job.status in ("completed", "failed", "cancelled"):
        return
    job.status = "cancelled"
    job.finished_at = now
    if job.real is not None:
        # The trainer's whole process group goes with its GPUs.
        real_training.stop(emu, job)
    _log(job, now, "Cancelled", "cancelled by request")
    emu.gpus.release(holder(job))
    emu.store.record("customization", job.id, "cancelled")
