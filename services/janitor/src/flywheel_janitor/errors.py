"""The janitor's own failures, classified by the shared taxonomy."""

from flywheel_contracts.errors import RetryableError


class ResourceStillPresent(RetryableError):
    """NMP accepted the delete or cancel, but the resource was still there when the wait ended;
    a later reclaim (the stale sweep) tries again."""
