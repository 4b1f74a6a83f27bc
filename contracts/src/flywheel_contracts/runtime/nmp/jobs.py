"""NMP job statuses (the official SDK's `JobStatus`) and stopping a job for certain.

A cancel that answers 404 proves nothing by itself: the route may be wrong, or the job filed
elsewhere. Only a read of the job says whether it is gone or still holds its GPUs.
"""

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol

from .errors import NmpNotFound, NmpProtocolError

JOB_STATUSES = frozenset(
    {"created", "pending", "running", "cancelling", "cancelled", "failed", "completed", "ready"}
    | {"unknown"}
)
"""Every status NMP reports for a customization or evaluation job."""

WAITING_JOB_STATUSES = frozenset({"created", "pending"})
"""Accepted, not yet running: waiting for a scheduler slot or for GPUs."""

ENDED_JOB_STATUSES = frozenset({"completed", "ready", "failed", "cancelled"})
"""Statuses after which a job holds nothing any more."""


class Stopped(StrEnum):
    CANCELLED = "cancelled"
    """NMP accepted the cancel; the job may still be `cancelling` for a moment."""
    ENDED = "ended"
    """The job had already ended by itself."""
    GONE = "gone"
    """NMP has no such job: both the cancel and a read of the job answered 404."""


class CancelNotApplied(NmpProtocolError):
    """The cancel answered 404 while a read shows the job alive: it still holds its GPUs."""


class HasStatus(Protocol):
    @property
    def status(self) -> str: ...


async def stop_job(
    job_id: str,
    cancel: Callable[[str], Awaitable[object]],
    read: Callable[[str], Awaitable[HasStatus]],
) -> Stopped:
    """Cancel `job_id` unless it has ended; a 404 counts only once a read confirms it."""
    settled, _ = await _settled(job_id, read)
    if settled is not None:
        return settled
    try:
        await cancel(job_id)
    except NmpNotFound as exc:
        settled, current = await _settled(job_id, read)
        if settled is not None:
            return settled
        raise CancelNotApplied(
            f"cancelling job {job_id} answered 404 but the job is {current}: {exc}"
        ) from exc
    return Stopped.CANCELLED


async def _settled(
    job_id: str, read: Callable[[str], Awaitable[HasStatus]]
) -> tuple[Stopped | None, str | None]:
    """GONE or ENDED as a read of the job says (None while it still runs), and its status."""
    try:
        current = (await read(job_id)).status
    except NmpNotFound:
        return Stopped.GONE, None
    return (Stopped.ENDED if current in ENDED_JOB_STATUSES else None), current
