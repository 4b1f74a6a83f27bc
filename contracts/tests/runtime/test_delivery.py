import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException
from pydantic import BaseModel, ValidationError
from pymongo.errors import AutoReconnect, DuplicateKeyError

from flywheel_contracts.errors import InvalidEvent, PermanentError, RetryableError
from flywheel_contracts.runtime.delivery import (
    Origin,
    Reason,
    RedeliveryPolicy,
    RetryPolicy,
    dead_letter_headers,
    dead_letter_reason,
    is_retryable,
)

pytestmark = pytest.mark.unit


class _Model(BaseModel):
    count: int


def _validation_error() -> ValidationError:
    try:
        _Model.model_validate({"count": "many"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "exc",
    [
        RetryableError("lock held"),
        ConnectionResetError("reset"),
        TimeoutError(),
        AutoReconnect("primary gone"),
        httpx.ConnectTimeout("slow"),
        KafkaException(KafkaError(KafkaError._TIMED_OUT, retriable=True)),
    ],
)
def test_transient_failures_are_retried(exc: Exception) -> None:
    assert is_retryable(exc)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (InvalidEvent("not JSON"), Reason.INVALID_EVENT),
        (PermanentError("no such workload"), Reason.PERMANENT_ERROR),
        (_validation_error(), Reason.PERMANENT_ERROR),
        (DuplicateKeyError("dup"), Reason.UNEXPECTED_ERROR),
        (KeyError("bug"), Reason.UNEXPECTED_ERROR),
        (KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), Reason.UNEXPECTED_ERROR),
    ],
)
def test_everything_else_is_dead_lettered_at_once_with_its_reason(
    exc: Exception, reason: Reason
) -> None:
    assert not is_retryable(exc)
    assert dead_letter_reason(exc) is reason


def test_backoff_doubles_up_to_the_cap_and_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.1, max_delay_s=0.5)

    assert [policy.delay_after(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert [policy.allows_retry_after(n) for n in range(1, 6)] == [True] * 4 + [False]


def test_redelivery_rounds_back_off_exponentially_up_to_the_cap_without_end() -> None:
    policy = RedeliveryPolicy(base_delay_s=5.0, max_delay_s=60.0)

    assert [policy.delay_after_round(n) for n in (1, 2, 3, 4, 5, 100)] == [
        5.0,
        10.0,
        20.0,
        40.0,
        60.0,
        60.0,
    ]


def test_dead_letter_headers_say_why_and_where_and_replace_an_earlier_failure() -> None:
    original = [("event_id", b"e1"), ("dlq.reason", b"old"), ("dlq.origin.offset", b"1")]

    headers = dead_letter_headers(
        original,
        origin=Origin("run.requested", 2, 41),
        service="datasets",
        reason=Reason.PERMANENT_ERROR,
        exc=PermanentError("x" * 5000),
        attempts=5,
    )

    as_dict = dict(headers)
    assert len(as_dict) == len(headers)
    assert as_dict["event_id"] == b"e1"
    assert as_dict["dlq.reason"] == b"permanent_error"
    assert as_dict["dlq.exception"].startswith(b"flywheel_contracts.errors.PermanentError: xxx")
    assert len(as_dict["dlq.exception"]) == 2000
    assert as_dict["dlq.origin.topic"] == b"run.requested"
    assert as_dict["dlq.origin.partition"] == b"2"
    assert as_dict["dlq.origin.offset"] == b"41"
    assert as_dict["dlq.service"] == b"datasets"
    assert as_dict["dlq.attempts"] == b"5"
