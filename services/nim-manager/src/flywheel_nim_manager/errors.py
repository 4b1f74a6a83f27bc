"""nim-manager's errors, on the shared retryable / permanent taxonomy."""

from flywheel_contracts.errors import PermanentError


class MissingRunId(PermanentError):
    """A run-scoped event without a run id: nothing can be done with it."""
