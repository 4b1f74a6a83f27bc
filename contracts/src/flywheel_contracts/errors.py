"""Error taxonomy shared by every service.

The service kit classifies exceptions by these bases: a retryable error is retried with backoff,
a permanent one goes straight to the topic's dead-letter queue.
"""


class FlywheelError(Exception):
    """Base of every error Flywheel raises on purpose."""


class RetryableError(FlywheelError):
    """A transient failure (network, 5xx, lock held): the same input may succeed later."""


class PermanentError(FlywheelError):
    """The input can never succeed as is; retrying only delays the dead-letter queue."""


class InvalidEvent(PermanentError):
    """A message that is not a well-formed event of a known type and version."""
