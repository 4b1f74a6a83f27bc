"""NeMo Relay: a body of Relay events (`/v1/relay/events`) to one item per LLM call, and an item
to a record. The pairing and the mapping are `flywheel_relay`'s, the code the Relay subscriber
runs too, so a call comes out as the same record whichever way it arrived.

What arrives: lines of Relay's ATOF JSONL file export, or the body of its ndjson stream sink
(one chunked request for the exporter's whole life), or a JSON array of events. Each LLM call
(its `start` and `end` events, same uuid) becomes one item `{"start", "end", "context"}`, where
`context` carries what only the other events of the body know: the enclosing agent's name and
run id, the call's step in that run, the scope path and a client id from scope metadata. An LLM
event whose other half is not in the body is forwarded alone, to be refused as
`unpaired_event` and kept in logs.rejected; so is a line that is not a JSON object. Relay's
http_post stream sink sends every event in its own request, so each of its calls ends up as two
unpaired events: it must be pointed elsewhere (the refusal message says where).

A step counts the calls of its run that are in the body, so a body should hold whole runs (a
whole export, or the ndjson stream, does). The ndjson stream's request ends when Relay's
exporter closes, and a body over the intake's limit is refused: it suits bounded runs (a job, a
batch); a long-running service uses the flywheel-relay subscriber.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import ProducerSettings
from flywheel_ingest.producers.formats import Untranslatable
from flywheel_ingest.validation import LogRecord, Refusal
from flywheel_relay import records
from flywheel_relay.records import Call, Problem, RecordError, is_llm_event

_REASONS = {
    Problem.UNPAIRED_EVENT: RejectReason.UNPAIRED_EVENT,
    Problem.INCOMPLETE_CALL: RejectReason.INCOMPLETE_CALL,
    Problem.NOT_OPENAI_FORMAT: RejectReason.NOT_OPENAI_FORMAT,
    Problem.WRONG_TYPE: RejectReason.WRONG_TYPE,
    Problem.NO_IDENTITY: RejectReason.MISSING_FIELD,
}


def to_record(item: dict[str, Any], settings: ProducerSettings) -> dict[str, Any]:
    """The record of one call item; configured workload and client ids win over the events'."""
    try:
        return records.to_record(
            Call.from_item(item),
            workload_id=settings.relay.workload_id,
            client_id=settings.relay.client_id,
        )
    except RecordError as exc:
        raise Untranslatable(_REASONS[exc.problem], exc.message) from exc


@dataclass(frozen=True, slots=True)
class EventBody:
    """What a body of events is forwarded as."""

    items: list[bytes]
    """One per call (complete or a lone half), or per unreadable event, in body order."""
    positions: list[list[int]]
    """For each item, the positions (1-based lines, or array elements) of its events."""
    ignored: int
    """Events that only give calls their context: agent and tool scopes, marks, ..."""
    unpaired: int
    unreadable: int


def items_of(body: bytes) -> EventBody:
    """Pair the LLM events of a body (NDJSON, or a JSON array of events) into call items."""
    events: list[tuple[int, dict[str, Any]]] = []
    unreadable: list[tuple[int, bytes]] = []
    for position, raw, value in _events(body):
        if isinstance(value, dict):
            events.append((position, value))
        else:
            unreadable.append((position, raw))
    paired = records.pair(event for _, event in events)
    where: dict[tuple[str, str], list[int]] = {}
    for position, event in events:
        if is_llm_event(event):
            where.setdefault((event["uuid"], event["scope_category"]), []).append(position)
    entries: list[tuple[list[int], bytes]] = [
        (_positions(call, where), orjson.dumps(call.item()))
        for call in [*paired.calls, *paired.unpaired]
    ]
    entries.extend(([position], raw) for position, raw in unreadable)
    entries.sort(key=lambda entry: entry[0])
    return EventBody(
        items=[item for _, item in entries],
        positions=[positions for positions, _ in entries],
        ignored=paired.ignored,
        unpaired=len(paired.unpaired),
        unreadable=len(unreadable),
    )


def answer(body: EventBody, verdicts: Sequence[LogRecord | Refusal]) -> dict[str, Any]:
    """The 202 answer: how many calls, how many will be records, and why the others will not."""
    rejected = [
        {
            "index": index,
            "events": body.positions[index],
            "reason": verdict.reason.value,
            "message": verdict.message,
        }
        for index, verdict in enumerate(verdicts)
        if isinstance(verdict, Refusal)
    ]
    return {
        "calls": len(verdicts),
        "accepted": len(verdicts) - len(rejected),
        "rejected": rejected,
        "ignored": body.ignored,
    }


def _events(body: bytes) -> list[tuple[int, bytes, object]]:
    """(position, raw bytes, parsed value or None when unreadable) of every event."""
    if body.lstrip()[:1] == b"[":
        try:
            array = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # read as lines below: the refusal then names the line
        else:
            if isinstance(array, list):
                return [
                    (number, orjson.dumps(value), value)
                    for number, value in enumerate(array, start=1)
                ]
    found: list[tuple[int, bytes, object]] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if not line.strip():
            continue
        try:
            found.append((number, line, orjson.loads(line)))
        except orjson.JSONDecodeError:
            found.append((number, line, None))
    return found


def _positions(call: Call, where: dict[tuple[str, str], list[int]]) -> list[int]:
    """Where the call's events were: a repeated event takes its positions in order."""
    positions: list[int] = []
    for phase, event in (("start", call.start), ("end", call.end)):
        seen = where.get((call.uuid, phase))
        if event is not None and seen:
            positions.append(seen.pop(0))
    return sorted(positions)
