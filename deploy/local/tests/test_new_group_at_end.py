"""Starting a new consumer group at the end of `logs.raw` waits out a Kafka whose group
coordinator is still loading (a fresh or just restarted broker), and gives up on real errors."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from flywheel_contracts.runtime import KafkaSettings
from flywheel_localstack import services

pytestmark = pytest.mark.unit


def _failing(*codes: int) -> tuple[Any, list[int]]:
    """A stand-in that raises each of `codes` in turn, then reports a new group."""
    calls: list[int] = []

    def attempt(_kafka: KafkaSettings, _group: str, _topic: str) -> bool:
        calls.append(1)
        if len(calls) <= len(codes):
            raise KafkaException(KafkaError(codes[len(calls) - 1]))
        return True

    return attempt, calls


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    ],
)
def test_a_coordinator_not_ready_yet_is_waited_for(
    code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempt, calls = _failing(code, code)
    monkeypatch.setattr(services, "_start_new_group_at_end", attempt)
    monkeypatch.setattr("flywheel_localstack.services.time.sleep", lambda _s: None)
    assert services.start_new_group_at_end(KafkaSettings(), "g", "logs.raw") is True
    assert len(calls) == 3


def test_any_other_error_is_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    attempt, calls = _failing(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    monkeypatch.setattr(services, "_start_new_group_at_end", attempt)
    with pytest.raises(KafkaException):
        services.start_new_group_at_end(KafkaSettings(), "g", "logs.raw")
    assert len(calls) == 1
