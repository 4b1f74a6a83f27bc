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

    def __init__(self, message: str, *, attempts: int, rate_limited: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.rate_limited = rate_limited


class RateLimited(ChatFailed):
    """The endpoint kept answering 429 to one request for longer than the evaluator waits.
    Not a failed record: every record would fail the same way, so the evaluation ends."""


class Unreachable(ChatFailed):
    """The endpoint accepted no connection for longer than the evaluator waits. Not a failed
    record: every record would fail the same way, so the evaluation ends."""


class SchemaRefused(ChatFailed):
    """The endpoint refused the request's tool schemas (a 400 naming its schema or grammar).
    Not a failed record: every record carries the same kind of schema, so the evaluation ends."""

    def __init__(self, message: str, *, server_text: str, attempts: int) -> None:
        super().__init__(message, attempts=attempts)
        self.server_text = server_text
