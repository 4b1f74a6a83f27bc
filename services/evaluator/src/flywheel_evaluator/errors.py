"""The evaluator's failures, classified the kit's way."""

from flywheel_contracts.errors import PermanentError
from flywheel_contracts.events import EvalErrorKind


class EvaluationFailed(PermanentError):
    """An evaluation cannot produce scores; it ends with eval.done carrying this error."""

    def __init__(self, kind: EvalErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ChatFailed(Exception):
    """A chat request failed for good (after its retries, or at once for a permanent error)."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
