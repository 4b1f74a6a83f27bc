"""Pure decisions about one customization: progress news, failure kinds, names, the record."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from flywheel_contracts.events import CustomizationErrorKind
from flywheel_contracts.primitives import MESSAGE_MAX
from flywheel_contracts.runtime.nmp import CustomizationStatus
from flywheel_contracts.runtime.testing import ManualClock
from flywheel_customizer.jobs import (
    NO_ERROR_DETAILS,
    CustomizationRecord,
    Outcome,
    Phase,
    Progress,
    failure_outcome,
    job_name,
)
from flywheel_customizer.testing.events import nim_up

pytestmark = pytest.mark.unit


def _status(**fields: Any) -> CustomizationStatus:
    return CustomizationStatus.model_validate(fields)


def _progress(status: str, percent: float, epochs: int = 0, steps: int = 0) -> Progress:
    return Progress(status=status, percent=percent, epochs=epochs, steps=steps)


@pytest.mark.parametrize(
    ("previous", "current", "news"),
    [
        (None, _progress("running", 10, 0, 3), True),
        (_progress("running", 10, 0, 3), _progress("running", 10, 0, 3), False),
        (_progress("running", 10, 0, 3), _progress("running", 20, 0, 6), True),
        (_progress("running", 10, 0, 3), _progress("running", 10, 0, 4), True),
        (_progress("running", 40, 1, 9), _progress("running", 20, 0, 6), False),
        (_progress("running", 40, 1, 9), _progress("completed", 100, 2, 20), True),
        (None, _progress("pending", 0), False),
        (None, _progress("created", 0), False),
    ],
)
def test_only_forward_training_progress_is_news(
    previous: Progress | None, current: Progress, news: bool
) -> None:
    assert current.advances(previous) is news


def test_progress_outside_training_keeps_the_last_numbers() -> None:
    before = _progress("running", 60, 1, 12)
    after = Progress.of(_status(status="failed", percentage_done=0), before)
    assert after == _progress("failed", 60, 1, 12)
    assert Progress.of(_status(status="pending"), None) == _progress("pending", 0)


def test_progress_percent_is_clamped_to_the_contract_range() -> None:
    assert Progress.of(_status(status="running", percentage_done=100.4), None).percent == 100


def test_failure_after_training_started_is_a_training_failure() -> None:
    status = _status(
        status="failed",
        epochs_completed=1,
        steps_completed=4,
        status_logs=[
            {"message": "NotEnoughResources", "detail": "waiting"},
            {"message": "Running"},
            {"message": "Failed", "detail": "loss is NaN"},
        ],
    )
    outcome = failure_outcome(status)
    assert outcome.error is not None
    assert outcome.error.kind is CustomizationErrorKind.TRAINING_FAILED
    assert outcome.error.message == "loss is NaN"


def test_failure_while_waiting_for_gpus_is_a_gpu_shortage() -> None:
    status = _status(
        status="failed",
        status_logs=[
            {"message": "NotEnoughResources", "detail": "needs 8 GPU(s)"},
            {"message": "Failed", "detail": "scheduling timed out"},
        ],
    )
    outcome = failure_outcome(status)
    assert outcome.error is not None
    assert outcome.error.kind is CustomizationErrorKind.INSUFFICIENT_GPUS
    assert outcome.error.message == "scheduling timed out"


def test_error_messages_fit_the_contract() -> None:
    outcome = Outcome.failed(CustomizationErrorKind.TRAINING_FAILED, "x" * (MESSAGE_MAX + 10))
    assert outcome.error is not None and len(outcome.error.message) == MESSAGE_MAX
    empty = Outcome.failed(CustomizationErrorKind.TRAINING_FAILED, "")
    assert empty.error is not None and empty.error.message == NO_ERROR_DETAILS


def test_job_names_are_deterministic_and_unique_per_run_and_candidate() -> None:
    run_a, run_b = uuid4(), uuid4()
    model = "meta/llama-3.2-1b-instruct"
    assert job_name(run_a, "wl", model) == job_name(run_a, "wl", model)
    assert job_name(run_a, "wl", model) != job_name(run_b, "wl", model)
    assert job_name(run_a, "wl", model) != job_name(run_a, "wl", "meta/llama-3.2-3b-instruct")


def test_record_round_trips_through_its_document() -> None:
    event = nim_up()
    clock = ManualClock()
    record = CustomizationRecord.from_nim_up(event, clock()).model_copy(
        update={
            "phase": Phase.FINISHED,
            "progress": _progress("completed", 100, 2, 20),
            "outcome": Outcome.failed(CustomizationErrorKind.STALLED, "no progress"),
            "finished_at": clock(),
        }
    )
    document = record.to_document()
    assert document["_id"] == f"{event.run_id}/{event.payload.candidate.model_name}"
    assert document["finished_at"] == clock(), "datetimes stay BSON dates"
    restored = CustomizationRecord.model_validate(document)
    assert restored == record
    assert restored.cause == event and restored.nim_up == event.payload
