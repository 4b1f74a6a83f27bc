"""NeMo Relay's events to Flywheel log records. Pure: no I/O, no Relay runtime needed.

What Relay emits (ATOF 0.1, the same dict from `event.to_dict()` in a subscriber, one line of
its JSONL file export, or one event of its stream sinks): every scope, tool call and LLM call is
a `kind: "scope"` event with `scope_category` `start` or `end`, a `category` (`agent`, `tool`,
`llm`, `function`, ...), a `uuid` shared by the start and the end, and the `parent_uuid` of the
scope it ran in. An LLM call's start carries the request Relay was given in `data`
(`{"headers": ..., "content": <the raw OpenAI request>}`); its end carries the raw response in
`data` (null when the call failed; `metadata["otel.status_code"]` then says `ERROR`). Marks
(`kind: "mark"`, e.g. streamed `llm.chunk`s) are not part of a call.

One call becomes one record: the start's request, the end's response, the start's time, and
the agent run it belongs to: its nearest enclosing agent scope (`agent_run` is that scope's
uuid), and `step`, its position among that run's LLM calls (0, 1, ...), so a workload's records
can be grouped per run and replayed in order.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

PRODUCER = "nemo-relay"
CLIENT_ID_KEY = "flywheel.client_id"
"""Scope or LLM-call metadata key naming the Flywheel client (the nearest one wins)."""

MAX_IDENTIFIER = 256
_OUTSIDE_IDENTIFIER = re.compile(r"[^A-Za-z0-9_.:@/+-]+")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:@/+-]{1,256}")
_MAX_DEPTH = 256  # guards the walk up a (malformed, cyclic) parent chain
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9})\d*)?(Z|[+-]\d\d:\d\d)?")

# The http_post stream sink posts each event on its own, so no request holds both halves.
_APART = (
    "Relay's http_post stream sink sends every event in a request of its own, so the two "
    "halves of a call never meet: export with the ndjson stream transport or the JSONL file "
    "sink, or use the flywheel-relay subscriber"
)


class Problem(StrEnum):
    """Why a call cannot become a record (values match Flywheel's reject reasons where one fits)."""

    UNPAIRED_EVENT = "unpaired_event"
    INCOMPLETE_CALL = "incomplete_call"
    NOT_OPENAI_FORMAT = "not_openai_format"
    WRONG_TYPE = "wrong_type"
    NO_IDENTITY = "missing_field"


class RecordError(ValueError):
    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


def is_llm_event(event: Mapping[str, Any]) -> bool:
    """An LLM call's start or end (anything else only gives calls their context)."""
    return (
        event.get("kind") == "scope"
        and event.get("category") == "llm"
        and event.get("scope_category") in ("start", "end")
        and isinstance(event.get("uuid"), str)
    )


def workload_for_agent(name: str) -> str | None:
    """The workload id an agent's name gives: the name itself, with each run of characters a
    workload id cannot hold (spaces, ...) replaced by `-`; None when nothing is left."""
    slug = _OUTSIDE_IDENTIFIER.sub("-", name).strip("-")[:MAX_IDENTIFIER]
    return slug or None


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the events around a call say about it."""

    agent: str | None = None
    """Name of the nearest enclosing agent scope."""
    agent_run: str | None = None
    """uuid of that scope: one run of the agent."""
    step: int | None = None
    """Position of the call among the LLM calls of its run, from 0."""
    scope_path: tuple[str, ...] = ()
    """Names of the enclosing scopes, outermost first."""
    client_id: str | None = None
    """`flywheel.client_id` from the metadata of the nearest enclosing scope that has one."""

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "agent": self.agent,
            "agent_run": self.agent_run,
            "step": self.step,
            "scope_path": list(self.scope_path),
            "client_id": self.client_id,
        }
        return {key: item for key, item in value.items() if item is not None}

    @classmethod
    def from_json(cls, value: object) -> CallContext:
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise RecordError(Problem.WRONG_TYPE, "context must be an object")
        agent, run, client = value.get("agent"), value.get("agent_run"), value.get("client_id")
        step, path = value.get("step"), value.get("scope_path", [])
        if not all(item is None or isinstance(item, str) for item in (agent, run, client)):
            raise RecordError(
                Problem.WRONG_TYPE, "context.agent, agent_run and client_id must be strings"
            )
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise RecordError(Problem.WRONG_TYPE, "context.step must be an integer")
        if not isinstance(path, list) or not all(isinstance(name, str) for name in path):
            raise RecordError(Problem.WRONG_TYPE, "context.scope_path must be an array of names")
        return cls(agent, run, step, tuple(path), client)


@dataclass(frozen=True, slots=True)
class Call:
    """One LLM call: its start and end events (one may be missing) and its context."""

    uuid: str
    start: Mapping[str, Any] | None
    end: Mapping[str, Any] | None
    context: CallContext = field(default_factory=CallContext)

    @property
    def name(self) -> str:
        event = self.start or self.end or {}
        name = event.get("name")
        return name if isinstance(name, str) else "?"

    def item(self) -> dict[str, Any]:
        """The call as one JSON object, `{"start", "end", "context"}` (a missing half left out),
        the shape Flywheel's intake forwards and `from_item` reads."""
        item: dict[str, Any] = {}
        if self.start is not None:
            item["start"] = self.start
        if self.end is not None:
            item["end"] = self.end
        item["context"] = self.context.to_json()
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Call:
        start, end = item.get("start"), item.get("end")
        for half, event in (("start", start), ("end", end)):
            if event is not None and not (isinstance(event, Mapping) and is_llm_event(event)):
                raise RecordError(
                    Problem.WRONG_TYPE,
                    f"{half} must be a NeMo Relay LLM scope event (kind scope, category llm, "
                    "with a uuid)",
                )
        if start is None and end is None:
            raise RecordError(Problem.WRONG_TYPE, "the item holds neither a start nor an end event")
        uuids = {event["uuid"] for event in (start, end) if event is not None}
        if len(uuids) > 1:
            raise RecordError(
                Problem.WRONG_TYPE, f"start and end belong to different calls: {sorted(uuids)}"
            )
        return cls(uuids.pop(), start, end, CallContext.from_json(item.get("context")))


def to_record(
    call: Call, *, workload_id: str | None = None, client_id: str | None = None
) -> dict[str, Any]:
    """The Flywheel log record of a complete call; RecordError says why there is none.

    The configured `workload_id` and `client_id` win; without them the workload is the
    enclosing agent's name (see `workload_for_agent`) and the client is the nearest
    `flywheel.client_id` metadata of the call or its scopes. The request and response are kept
    exactly as Relay recorded them (tool-call ids and argument strings included).
    """
    start, end = _halves(call)
    request = _request(call, start)
    response = _response(call, end)
    timestamp = start.get("timestamp") or end.get("timestamp")
    if not isinstance(timestamp, str):
        raise RecordError(Problem.INCOMPLETE_CALL, f"{_label(call)}: the events carry no timestamp")
    record: dict[str, Any] = {
        "workload_id": _workload(call, workload_id),
        "client_id": _client(call, start, client_id),
        "timestamp": timestamp,
        "request": request,
        "response": response,
        "metadata": _metadata(call, start, end),
    }
    return record


def _halves(call: Call) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    if call.start is None:
        raise RecordError(
            Problem.UNPAIRED_EVENT,
            f"{_label(call)}: only its end event arrived; the start, which carries the request, "
            f"is not with it. {_APART}",
        )
    if call.end is None:
        raise RecordError(
            Problem.UNPAIRED_EVENT,
            f"{_label(call)}: only its start event arrived; the end, which carries the response, "
            f"is not with it (the call was still running when the events were exported, or "
            f"they were sent apart). {_APART}",
        )
    return call.start, call.end


def _request(call: Call, start: Mapping[str, Any]) -> dict[str, Any]:
    data = start.get("data")
    content = data.get("content") if isinstance(data, Mapping) else None
    if not isinstance(content, Mapping):
        raise RecordError(
            Problem.INCOMPLETE_CALL,
            f"{_label(call)}: the start event carries no request (data.content); a sanitize "
            "guardrail may have removed it",
        )
    if "messages" not in content:
        if "input" in content:
            raise RecordError(
                Problem.NOT_OPENAI_FORMAT,
                f"{_label(call)}: an OpenAI Responses request (input, not messages); records "
                "are chat completions",
            )
        raise RecordError(Problem.INCOMPLETE_CALL, f"{_label(call)}: the request has no messages")
    return dict(content)


def _response(call: Call, end: Mapping[str, Any]) -> dict[str, Any]:
    data = end.get("data")
    if data is None:
        metadata = end.get("metadata")
        status = metadata if isinstance(metadata, Mapping) else {}
        if status.get("otel.status_code") == "ERROR":
            why = status.get("otel.status_description") or status.get("exception.type") or "?"
            raise RecordError(
                Problem.INCOMPLETE_CALL,
                f"{_label(call)}: the call failed ({str(why)[:200]}); there is no response",
            )
        raise RecordError(
            Problem.INCOMPLETE_CALL, f"{_label(call)}: the end event carries no response (data)"
        )
    if not isinstance(data, Mapping):
        raise RecordError(
            Problem.NOT_OPENAI_FORMAT,
            f"{_label(call)}: the response is not an object (a {type(data).__name__})",
        )
    return dict(data)


def _workload(call: Call, configured: str | None) -> str:
    if configured:
        return configured
    agent = call.context.agent or _session_agent(call.start)
    workload = workload_for_agent(agent) if agent else None
    if workload is None:
        raise RecordError(
            Problem.NO_IDENTITY,
            f"{_label(call)}: no workload: the call ran outside any agent scope and no workload "
            "id is configured",
        )
    return workload


def _session_agent(start: Mapping[str, Any] | None) -> str | None:
    """The agent name Relay puts in the request headers it records (`x-dynamo-session-id`),
    for a call whose agent scope event is not among the events."""
    data = start.get("data") if start else None
    headers = data.get("headers") if isinstance(data, Mapping) else None
    session = headers.get("x-dynamo-session-id") if isinstance(headers, Mapping) else None
    return session if isinstance(session, str) and session else None


def _client(call: Call, start: Mapping[str, Any], configured: str | None) -> str:
    client = configured or _metadata_client(start) or call.context.client_id
    if not client:
        raise RecordError(
            Problem.NO_IDENTITY,
            f"{_label(call)}: no client: none is configured and neither the call nor its scopes "
            f"carry {CLIENT_ID_KEY!r} metadata",
        )
    return client


def _metadata_client(event: Mapping[str, Any]) -> str | None:
    metadata = event.get("metadata")
    client = metadata.get(CLIENT_ID_KEY) if isinstance(metadata, Mapping) else None
    return client if isinstance(client, str) and client else None


def _metadata(call: Call, start: Mapping[str, Any], end: Mapping[str, Any]) -> dict[str, Any]:
    context = call.context
    profile = start.get("category_profile")
    latency = _latency_ms(start.get("timestamp"), end.get("timestamp"))
    metadata: dict[str, Any] = {
        "producer": PRODUCER,
        "agent": context.agent or _session_agent(start),
        "agent_run": context.agent_run,
        "step": context.step,
        "call_id": call.uuid,
        "call_name": start.get("name"),
        "parent_uuid": start.get("parent_uuid"),
        "root_uuid": start.get("propagation_root_uuid"),
        "scope_path": list(context.scope_path) or None,
        "model_name": profile.get("model_name") if isinstance(profile, Mapping) else None,
        "latency_ms": latency,
    }
    return {key: value for key, value in metadata.items() if value is not None}


def _latency_ms(started: object, ended: object) -> float | None:
    first, last = instant_ns(started), instant_ns(ended)
    if first is None or last is None or last < first:
        return None
    return round((last - first) / 1_000_000, 3)


def instant_ns(timestamp: object) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (Relay writes nanosecond precision,
    which `datetime` would cut to microseconds); None when unreadable."""
    if not isinstance(timestamp, str):
        return None
    match = _RFC3339.fullmatch(timestamp)
    if match is None:
        return None
    seconds, fraction, offset = match.groups()
    try:
        instant = datetime.fromisoformat(seconds + _offset(offset))
    except ValueError:
        return None
    return int(instant.timestamp()) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


def _offset(offset: str | None) -> str:
    return "+00:00" if offset in (None, "Z") else str(offset)


def _label(call: Call) -> str:
    return f"LLM call {call.uuid} ({call.name!r})"


# -- pairing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scope:
    name: str
    category: str
    parent: str | None
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Paired:
    calls: list[Call]
    """Complete calls, in the order they started."""
    unpaired: list[Call]
    """Starts without their end and ends without their start."""
    ignored: int
    """Events that are no LLM start or end (scopes of agents and tools, marks, ...)."""


class Pairing:
    """Joins LLM start and end events into calls as the events come; anything else is only
    context. Both halves may come in either order; a call's context (its agent run, step,
    scope path) is taken when its start comes, so the enclosing scopes' starts must come
    before it, as Relay emits them (`pair` puts a list in that order). A call exported twice
    (its events repeated) keeps its context and step, so its record comes out the same.

    Memory stays bounded: a scope is forgotten when it ends, and past `max_open` half calls the
    oldest is set aside as unpaired."""

    def __init__(self, *, max_open: int = 10_000) -> None:
        self._max_open = max_open
        self._scopes: dict[str, _Scope] = {}
        self._starts: dict[str, deque[tuple[Mapping[str, Any], CallContext]]] = {}
        self._ends: dict[str, deque[Mapping[str, Any]]] = {}
        self._contexts: dict[str, CallContext] = {}
        self._steps: dict[str, int] = {}
        self._set_aside: list[Call] = []
        self._open = 0
        self.ignored = 0

    @property
    def open_calls(self) -> int:
        return self._open

    def add(self, event: Mapping[str, Any]) -> Call | None:
        """The call this event completes, if it does."""
        if not is_llm_event(event):
            self.ignored += 1
            self._track_scope(event)
            return None
        uuid: str = event["uuid"]
        if event["scope_category"] == "start":
            context = self._context_of(uuid, event)
            end = _take(self._ends, uuid)
            if end is not None:
                self._open -= 1
                return Call(uuid, event, end, context)
            self._starts.setdefault(uuid, deque()).append((event, context))
        else:
            opened = _take(self._starts, uuid)
            if opened is not None:
                self._open -= 1
                return Call(uuid, opened[0], event, opened[1])
            self._ends.setdefault(uuid, deque()).append(event)
        self._open += 1
        self._bound()
        return None

    def finish(self) -> list[Call]:
        """The half calls left (and those set aside), oldest first; the pairing forgets them."""
        left = [
            *self._set_aside,
            *(
                Call(uuid, start, None, context)
                for uuid, starts in self._starts.items()
                for start, context in starts
            ),
            *(Call(uuid, None, end) for uuid, ends in self._ends.items() for end in ends),
        ]
        self._set_aside, self._starts, self._ends, self._open = [], {}, {}, 0
        return left

    def _track_scope(self, event: Mapping[str, Any]) -> None:
        uuid, name = event.get("uuid"), event.get("name")
        if event.get("kind") != "scope" or not isinstance(uuid, str):
            return
        if event.get("scope_category") == "end":
            self._scopes.pop(uuid, None)
            self._steps.pop(uuid, None)
            return
        if event.get("scope_category") == "start":
            parent = event.get("parent_uuid")
            self._scopes[uuid] = _Scope(
                name if isinstance(name, str) else "",
                str(event.get("category") or ""),
                parent if isinstance(parent, str) else None,
                _metadata_client(event),
            )

    def _context_of(self, uuid: str, start: Mapping[str, Any]) -> CallContext:
        known = self._contexts.get(uuid)
        if known is not None:
            return known
        context = self._context(start)
        self._contexts[uuid] = context
        if len(self._contexts) > self._max_open:
            del self._contexts[next(iter(self._contexts))]
        return context

    def _context(self, start: Mapping[str, Any]) -> CallContext:
        path: list[str] = []
        agent: tuple[str, str] | None = None
        client: str | None = None
        parent = start.get("parent_uuid")
        seen: set[str] = set()
        while isinstance(parent, str) and parent in self._scopes and parent not in seen:
            if len(seen) >= _MAX_DEPTH:
                break
            seen.add(parent)
            scope = self._scopes[parent]
            path.append(scope.name)
            if agent is None and scope.category == "agent":
                agent = (scope.name, parent)
            client = client or scope.client_id
            parent = scope.parent
        if agent is None:
            return CallContext(scope_path=tuple(reversed(path)), client_id=client)
        name, run = agent
        step = self._steps.get(run, 0)
        self._steps[run] = step + 1
        return CallContext(name, run, step, tuple(reversed(path)), client)

    def _bound(self) -> None:
        while self._open > self._max_open:
            if self._starts:
                uuid = next(iter(self._starts))
                start, context = _take(self._starts, uuid) or ({}, CallContext())
                self._set_aside.append(Call(uuid, start, None, context))
            else:
                uuid = next(iter(self._ends))
                self._set_aside.append(Call(uuid, None, _take(self._ends, uuid)))
            self._open -= 1


_T = TypeVar("_T")


def _take(waiting: dict[str, deque[_T]], uuid: str) -> _T | None:
    queue = waiting.get(uuid)
    if not queue:
        return None
    first = queue.popleft()
    if not queue:
        del waiting[uuid]
    return first


def pair(events: Iterable[Mapping[str, Any]]) -> Paired:
    """Calls from a list of events in any order (an export, a concatenation of exports): they
    are put back in time order first, ties keeping their order, so each call's context and step
    come out as a subscriber sees them live."""
    ordered = sorted(events, key=lambda event: instant_ns(event.get("timestamp")) or 0)
    pairing = Pairing(max_open=len(ordered) + 1)
    calls = [call for event in ordered if (call := pairing.add(event)) is not None]
    calls.sort(key=lambda call: instant_ns((call.start or {}).get("timestamp")) or 0)
    return Paired(calls, pairing.finish(), pairing.ignored)


def identifier_ok(value: str) -> bool:
    """Whether `value` can be a Flywheel workload or client id."""
    return _IDENTIFIER.fullmatch(value) is not None
