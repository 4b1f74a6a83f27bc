"""The events the CLI produces: run.requested, run.cancelled and system.shutdown."""

import getpass
from typing import Any
from uuid import UUID, uuid4

from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.events import RunCancelled, RunRequested, SystemShutdown
from flywheel_contracts.run_config import RunOverrides

PRODUCER = "cli"


def current_user() -> str | None:
    """Who runs the CLI, for the events' audit trail; None where the system cannot tell."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return None


def run_requested(
    workload_id: str,
    client_id: str,
    overrides: RunOverrides,
    *,
    requested_by: str | None,
    run_id: UUID | None = None,
) -> Envelope[Any]:
    """A request for a new run (a fresh run id unless one is given)."""
    payload = RunRequested(
        workload_id=workload_id,
        client_id=client_id,
        overrides=overrides,
        requested_by=requested_by,
    )
    return new_event(payload, producer=PRODUCER, run_id=run_id or uuid4())


def run_cancelled(run_id: UUID, *, reason: str | None, requested_by: str | None) -> Envelope[Any]:
    # The payload's own default reason applies unless one is given.
    fields = {"reason": reason} if reason is not None else {}
    payload = RunCancelled(requested_by=requested_by, **fields)
    return new_event(payload, producer=PRODUCER, run_id=run_id)


def system_shutdown(*, reason: str | None, requested_by: str | None) -> Envelope[Any]:
    fields = {"reason": reason} if reason is not None else {}
    payload = SystemShutdown(requested_by=requested_by, **fields)
    return new_event(payload, producer=PRODUCER, run_id=None)
