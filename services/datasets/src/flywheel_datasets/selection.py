"""From the stream of logged records (newest first) to the run's sample, a page at a time.

Each record is checked against the rules, then offered to deduplication. The workload type is
only known at the end (tool calling as soon as any valid record calls a function), while the
blueprint filters tool-calling workloads before deduplicating them; so two deduplication
streams are kept: one over the valid records while none calls a function, one over those that
call functions, and the type picks one at the end (once a record calls a function, the first
stream is no longer needed). Reading stops once the chosen stream holds `limit` records.

A kept record is held as compact JSON without its tool schemas, which are the same object for
every record that logged the same tools: the sample costs about a kilobyte per record.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from flywheel_contracts.run_config import WorkloadType
from flywheel_datasets.dedup import Deduplicator
from flywheel_datasets.records import Record, conversation_key, first_tool_name, user_turns
from flywheel_datasets.rules import Checker, Rule, has_function_calls
from flywheel_datasets.similarity import Sketch, normalize, sketches


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """One hit of the log store: its document id and its source (tools attached)."""

    doc_id: str
    source: Record


@dataclass(frozen=True, slots=True)
class Candidate:
    """A kept record, ready to be split."""

    doc_id: str
    body: bytes
    tools: Any
    turns: tuple[str, ...]
    label: str
    group: str

    def record(self) -> Record:
        """The record as logged (the tool schemas are shared: do not change them)."""
        record: Record = orjson.loads(self.body)
        if self.tools is not None:
            record["request"]["tools"] = self.tools
        return record


@dataclass(frozen=True)
class Selection:
    candidates: list[Candidate]
    workload_type: WorkloadType
    fetched: int
    dropped: Counter[Rule]


class _Stream:
    def __init__(self, near_threshold: float) -> None:
        self.dedup = Deduplicator(near_threshold)
        self.kept: list[int] = []


class Collector:
    def __init__(
        self,
        *,
        limit: int,
        max_fetch: int,
        near_threshold: float,
        max_tool_properties: int,
        parse_arguments: bool,
    ) -> None:
        self._limit = limit
        self._max_fetch = max_fetch
        self._checker = Checker(
            max_tool_properties=max_tool_properties, parse_arguments=parse_arguments
        )
        self._any = _Stream(near_threshold)
        self._calls = _Stream(near_threshold)
        self._candidates: list[Candidate] = []
        self._fetched = 0
        self._format_drops: Counter[Rule] = Counter()
        self._valid = 0
        self._offered_calls = 0

    @property
    def fetched(self) -> int:
        return self._fetched

    @property
    def done(self) -> bool:
        return self._fetched >= self._max_fetch or len(self._chosen.kept) >= self._limit

    @property
    def _tool_calling(self) -> bool:
        return self._offered_calls > 0

    @property
    def _chosen(self) -> _Stream:
        return self._calls if self._tool_calling else self._any

    def add(self, page: Sequence[LoggedRecord]) -> None:
        """Examine `page` in order, stopping as soon as `done`."""
        verdicts = [self._check(logged.source) for logged in page]
        texts = [normalize("\n".join(turns)) for turns in verdicts if isinstance(turns, list)]
        pending = iter(sketches(texts))
        for logged, verdict in zip(page, verdicts, strict=True):
            if self.done:
                return
            self._fetched += 1
            if isinstance(verdict, Rule):
                self._format_drops[verdict] += 1
                continue
            self._offer(logged, verdict, next(pending))

    def selection(self) -> Selection:
        stream = self._chosen
        dropped = self._format_drops.copy()
        dropped[Rule.DUPLICATE] += stream.dedup.duplicates
        dropped[Rule.NEAR_DUPLICATE] += stream.dedup.near_duplicates
        if self._tool_calling:
            dropped[Rule.NO_TOOL_CALLS] += self._valid - self._offered_calls
        return Selection(
            candidates=[self._candidates[i] for i in stream.kept],
            workload_type=WorkloadType.TOOL_CALLING if self._tool_calling else WorkloadType.GENERIC,
            fetched=self._fetched,
            dropped=+dropped,
        )

    def _check(self, source: Record) -> list[str] | Rule:
        rule = self._checker.check(source)
        return rule if rule is not None else user_turns(source)

    def _offer(self, logged: LoggedRecord, turns: list[str], sketch: Sketch) -> None:
        self._valid += 1
        if has_function_calls(logged.source):
            self._offered_calls += 1
            stream = self._calls
        elif self._tool_calling:
            return  # dropped as no_tool_calls; the other stream is no longer needed
        else:
            stream = self._any
        if stream.dedup.offer(turns, sketch) is None:
            stream.kept.append(len(self._candidates))
            self._candidates.append(_candidate(logged, turns))


def _candidate(logged: LoggedRecord, turns: list[str]) -> Candidate:
    source = logged.source
    request = source["request"]
    tools = request.pop("tools", None)
    # orjson hands back its growth buffer (up to twice the JSON's size): an exact copy is what
    # the sample keeps, since it holds every kept record until the files are written.
    body = bytes(memoryview(orjson.dumps(source)))
    if tools is not None:
        request["tools"] = tools
    return Candidate(
        doc_id=logged.doc_id,
        body=body,
        tools=tools,
        turns=tuple(turns),
        label=first_tool_name(source),
        group=conversation_key(source, turns),
    )
