"""Reading one run's events back from the topics into its `RunProgress`."""

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from typing import Any
from uuid import UUID

from flywheel_contracts.catalog import TOPICS
from flywheel_contracts.cli.bus import Bus, Record
from flywheel_contracts.cli.progress import RunProgress
from flywheel_contracts.envelope import Envelope, decode
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.events import RunCancelled, RunCompleted, RunFailed, RunRequested

RUN_TOPICS: tuple[str, ...] = tuple(
    spec.name for spec in TOPICS if spec.payload is not None and spec.payload.RUN_SCOPED
)
"""Every topic that carries events of a run."""

OUTCOME_TOPICS: tuple[str, ...] = tuple(
    payload.EVENT_TYPE for payload in (RunRequested, RunCancelled, RunCompleted, RunFailed)
)
"""What `report` needs: whether the run exists, was cancelled, and how it ended."""

InvalidHandler = Callable[[Record, InvalidEvent], None]


def run_key(run_id: UUID) -> bytes:
    """The Kafka key of the run's events (see `Envelope.key`)."""
    return str(run_id).encode()


def decode_records(
    records: Iterable[Record], on_invalid: InvalidHandler
) -> Iterator[Envelope[Any]]:
    """The valid events among `records`, validated and upcast; the rest go to `on_invalid`."""
    for record in records:
        try:
            yield decode(record.value)
        except InvalidEvent as exc:
            on_invalid(record, exc)


def run_events(
    records: Iterable[Record], run_id: UUID, on_invalid: InvalidHandler
) -> Iterator[Envelope[Any]]:
    """The run's events among `records`; the key is only a hint, the body decides."""
    return (e for e in decode_records(records, on_invalid) if e.run_id == run_id)


def read_run_events(
    bus: Bus, run_id: UUID, on_invalid: InvalidHandler, topics: tuple[str, ...] = RUN_TOPICS
) -> list[Envelope[Any]]:
    """The run's events that `topics` hold now, topic by topic as the bus reads them."""
    found: list[Envelope[Any]] = []
    batches = bus.read(topics, from_beginning=True, follow=False, key=run_key(run_id))
    with closing(batches):
        for batch in batches:
            found.extend(run_events(batch.records, run_id, on_invalid))
    return found


def follow_run(
    bus: Bus,
    run_id: UUID,
    *,
    timeout_s: float | None,
    on_change: Callable[[RunProgress], None],
    on_invalid: InvalidHandler,
    on_event: Callable[[Envelope[Any]], None] | None = None,
) -> RunProgress:
    """Read the run from its first event until it finishes or `timeout_s` passes.

    `on_change` also sees the first read, so a view can show the run before its first event.
    `on_event` sees every event of the run as read (a redelivered one again), e.g. to keep them
    for a report. The returned progress is unfinished only on timeout.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    progress = RunProgress(run_id)
    batches = bus.read(RUN_TOPICS, from_beginning=True, follow=True, key=run_key(run_id))
    with closing(batches):
        for reads, batch in enumerate(batches):
            events = list(run_events(batch.records, run_id, on_invalid))
            if on_event is not None:
                for envelope in events:
                    on_event(envelope)
            changed = [progress.apply(e) for e in events]
            if any(changed) or reads == 0:
                on_change(progress)
            # The ending may be read before other stages' events, which sit on other topics:
            # the final view waits until the reader has caught up.
            if progress.finished and batch.caught_up:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
    return progress
