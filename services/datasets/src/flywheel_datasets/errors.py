"""Why a dataset build stops: each failure carries the `dataset.failed` reason it maps to."""

from flywheel_contracts.errors import FlywheelError, PermanentError, RetryableError
from flywheel_contracts.events import DatasetFailureReason, FilterStats


class BuildFailed(FlywheelError):
    """The run gets no dataset; `reason` and the message go into `dataset.failed`."""

    reason: DatasetFailureReason = DatasetFailureReason.INTERNAL_ERROR

    def __init__(self, message: str, stats: FilterStats | None = None) -> None:
        super().__init__(message)
        self.stats = stats


class InvalidRunConfig(BuildFailed, PermanentError):
    reason = DatasetFailureReason.INVALID_CONFIG


class NotEnoughRecords(BuildFailed, PermanentError):
    """No records for the workload, or too few left after filtering (the message has numbers)."""

    reason = DatasetFailureReason.NOT_ENOUGH_RECORDS


class LogStoreUnavailable(BuildFailed, RetryableError):
    """Elasticsearch did not answer, even after the configured retries."""

    reason = DatasetFailureReason.LOG_STORE_UNAVAILABLE


class UploadFailed(BuildFailed):
    """NMP refused a dataset file or registration, or stayed down through the client's retries."""

    reason = DatasetFailureReason.UPLOAD_FAILED


class EmbeddingUnavailable(BuildFailed):
    """Semantic ICL selection could not embed the texts."""

    reason = DatasetFailureReason.INTERNAL_ERROR


class DeduplicationFailed(BuildFailed):
    """The process deduplicating the read stopped (killed, or out of memory)."""

    reason = DatasetFailureReason.INTERNAL_ERROR


class ReadInterrupted(RetryableError):
    """The log store lost the read's cursor (restarted, or the keep-alive ran out): the read
    has to start over."""
