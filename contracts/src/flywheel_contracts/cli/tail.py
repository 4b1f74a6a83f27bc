"""`flywheel tail`: a topic's messages as JSON lines."""

from collections.abc import Iterator
from contextlib import closing
from uuid import UUID

import click

from flywheel_contracts.catalog import topic as catalog_topic
from flywheel_contracts.cli.bus import Bus
from flywheel_contracts.cli.runs import InvalidHandler, decode_records, run_key
from flywheel_contracts.envelope import encode
from flywheel_contracts.payload import EventPayload


def event_payload(topic: str) -> type[EventPayload] | None:
    """The payload `topic` carries; None for raw logs, dead letters and foreign topics."""
    try:
        return catalog_topic(topic).payload
    except KeyError:
        return None


def tail_lines(
    bus: Bus,
    topic: str,
    *,
    run_id: UUID | None,
    from_beginning: bool,
    follow: bool,
    on_invalid: InvalidHandler,
) -> Iterator[str]:
    """One line per message: the event, validated and upcast, or the raw value of a topic
    that holds no events."""
    payload = event_payload(topic)
    if run_id is not None and (payload is None or not payload.RUN_SCOPED):
        raise click.UsageError(f"--run needs a topic of run events; {topic} holds none")
    key = None if run_id is None else run_key(run_id)
    batches = bus.read((topic,), from_beginning=from_beginning, follow=follow, key=key)
    with closing(batches):
        for batch in batches:
            if payload is None:
                yield from (r.value.decode(errors="replace").rstrip("\n") for r in batch.records)
                continue
            for envelope in decode_records(batch.records, on_invalid):
                if run_id is None or envelope.run_id == run_id:
                    yield encode(envelope).decode()
