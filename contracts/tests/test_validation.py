"""Field validation of payloads: times, counts, ids, string bounds, cross-field rules."""

from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from flywheel_contracts.events import (
    RAW_LIMIT,
    CustomizationDone,
    EvalDone,
    EvalError,
    EvalErrorKind,
    InFlightWork,
    MetricScore,
    Recommendation,
    RejectedRecord,
    RejectReason,
    RunFailed,
    RunRequested,
    SourcePosition,
    SplitCounts,
)
from flywheel_contracts.examples import EXAMPLES, REJECTED_RECORD
from flywheel_contracts.run_config import EvalType

pytestmark = pytest.mark.unit

_POSITION = SourcePosition(topic="logs.raw", partition=0, offset=0)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        RejectedRecord.of(
            b"x",
            reason=RejectReason.INVALID_JSON,
            message="m",
            source=_POSITION,
            rejected_at=datetime(2025, 6, 1, 12),
        )


@pytest.mark.parametrize("field", ["eval", "icl", "train", "val"])
def test_negative_count_is_refused(field: str) -> None:
    counts = {"eval": 1, "icl": 1, "train": 1, "val": 1} | {field: -1}
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        SplitCounts(**counts)


def test_bad_uuid_is_refused() -> None:
    with pytest.raises(ValidationError, match="uuid"):
        InFlightWork(run_id="run-42", kind="deployment")


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (RunRequested, {"workload_id": "w" * 257, "client_id": "c"}),
        (RunRequested, {"workload_id": "has space", "client_id": "c"}),
        (RunFailed, {"reason": "internal_error", "message": "m" * 4001}),
        (RunFailed, {"reason": "internal_error", "message": ""}),
    ],
)
def test_out_of_bounds_strings_are_refused(model: Any, fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model(**fields)


def test_unknown_enum_value_is_refused() -> None:
    with pytest.raises(ValidationError, match="internal_error"):
        RunFailed(reason="gremlins", message="m")


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        RunRequested(workload_id="w", client_id="c", colour="blue")  # type: ignore[call-arg]


def test_payloads_are_immutable() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        EXAMPLES["nim.down"].payload.reason = "failed"


def test_score_outside_its_interval_is_refused() -> None:
    with pytest.raises(ValidationError, match="ci_low"):
        MetricScore(name="similarity", value=0.9, n=10, failed=0, ci_low=0.1, ci_high=0.5)


def test_more_failures_than_samples_is_refused() -> None:
    with pytest.raises(ValidationError, match="failed"):
        MetricScore(name="similarity", value=0.5, n=3, failed=4, ci_low=0.1, ci_high=0.9)


def test_eval_done_is_either_scored_or_failed() -> None:
    scored = EXAMPLES["eval.done"].payload
    assert isinstance(scored, EvalDone)
    assert scored.ok
    error = EvalError(kind=EvalErrorKind.TIMED_OUT, message="took over an hour")
    with pytest.raises(ValidationError, match="either scores and usage, or error"):
        EvalDone.model_validate(scored.model_dump() | {"error": error.model_dump()})
    failed = EvalDone(
        candidate_model="m", eval_type=EvalType.ICL, job_id=None, target_model="m", error=error
    )
    assert not failed.ok
    with pytest.raises(ValidationError, match="either scores and usage, or error"):
        EvalDone(candidate_model="m", eval_type=EvalType.ICL, job_id=None, target_model="m")


def test_customization_done_is_either_a_model_or_an_error() -> None:
    done = EXAMPLES["customization.done"].payload
    assert isinstance(done, CustomizationDone)
    assert done.ok
    with pytest.raises(ValidationError, match="exactly one"):
        CustomizationDone.model_validate(done.model_dump() | {"customized_model": None})


def test_recommendation_names_a_candidate_and_eval_type_together() -> None:
    assert Recommendation(candidate_model=None, eval_type=None, reason="none qualifies")
    with pytest.raises(ValidationError, match="together"):
        Recommendation(candidate_model="m", eval_type=None, reason="r")


def test_rejected_record_keeps_any_bytes_within_bounds() -> None:
    raw = b"\xff" + b"a" * (RAW_LIMIT + 10)
    record = RejectedRecord.of(
        raw,
        reason=RejectReason.OVERSIZE,
        message="m",
        source=_POSITION,
        rejected_at=REJECTED_RECORD.rejected_at,
    )
    assert record.truncated
    assert len(record.raw) == RAW_LIMIT
    assert record.raw.startswith("\ufffd")
    assert record.raw_size == len(raw)
    assert not REJECTED_RECORD.truncated
