"""Ingest's failures, classified the kit's way: retryable (wait and try again, consumption
paused) or permanent (the input can never succeed as it is)."""

from collections.abc import Sequence

from flywheel_contracts.errors import PermanentError, RetryableError
from flywheel_contracts.events.records import RejectedRecord


class StoreUnavailable(RetryableError):
    """Elasticsearch did not take a bulk request (unreachable, overloaded, read-only, or refusing
    the index template). Never dropped: retried with backoff while consumption is paused, until
    an operator or the cluster itself fixes it."""


class OutboxUnavailable(RetryableError):
    """Kafka did not acknowledge rejected records or the batch event in time; `pending` are the
    rejected records still to publish (the others were acknowledged)."""

    def __init__(self, message: str, pending: Sequence[RejectedRecord] = ()) -> None:
        super().__init__(message)
        self.pending = tuple(pending)


class IntakeRefused(PermanentError):
    """An NDJSON body the HTTP intake does not forward (too large, a line over the limit)."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code
