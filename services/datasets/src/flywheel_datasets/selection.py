"""From the stream of logged records (newest first) to the run's sample, a page at a time.

Each record is checked against the rules, then offered to deduplication. The workload type is
only known at the end (tool calling as soon as any valid record calls a function), while the
blueprint filters tool-calling workloads before deduplicating them; so two deduplication
streams are kept: one over the valid records while none calls a function, one over those that
call functions, and the type picks one at the end (once a record calls a function, the first
stream is no longer needed). Reading stops once the chosen stream holds `limit` records.

A page goes through in two steps, so deduplication (in a process of its own, `dedup_worker`)
can work on one page while the next is checked: `Collector.prepare` checks a page's records and
routes them to a stream, `Collector.settle` takes the page's verdicts and counts, in order,
until reading is done. Records of a page past that point were never read, as far as the counts
go.

While the page is settled, every record read feeds the workload's volume and every kept one the
production baseline of its stream (`baseline`): counts and sums, no copy of the record.

A kept record is held as compact JSON without its tool schemas, which are the same object for
every record that logged the same tools: the sample costs about a kilobyte per record.
"""

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from flywheel_contracts.events.baseline import ProductionBaseline
from flywheel_contracts.run_config import WorkloadType
from flywheel_datasets.baseline import Tally, Volume, production_baseline
from flywheel_datasets.dedup import Offer
from flywheel_datasets.dedup_worker import Deduplication
from flywheel_datasets.records import Record, conversation_key, first_tool_name, user_turns
from flywheel_datasets.rules import Checker, Rule, has_function_calls

STREAMS = 2
_ANY, _CALLS = 0, 1  # the stream of every valid record, the stream of those calling functions


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
    baseline: ProductionBaseline


@dataclass
class _Stream:
    kept: list[int] = field(default_factory=list)
    dropped: Counter[Rule] = field(default_factory=Counter)
    tally: Tally = field(default_factory=Tally)  # the production baseline of `kept`


@dataclass(frozen=True)
class Prepared:
    """A page checked: per record the rule it breaks or its user turns, and the stream it is
    offered to (None: a plain answer once the workload calls tools); `offers` in that order."""

    records: Sequence[LoggedRecord]
    checks: list[list[str] | Rule]
    streams: list[int | None]
    offers: list[Offer]


class Collector:
    def __init__(
        self,
        *,
        limit: int,
        max_fetch: int,
        max_tool_properties: int,
        parse_arguments: bool,
    ) -> None:
        self._limit = limit
        self._max_fetch = max_fetch
        self._checker = Checker(
            max_tool_properties=max_tool_properties, parse_arguments=parse_arguments
        )
        self._streams = [_Stream() for _ in range(STREAMS)]
        self._calls_prepared = False
        self._candidates: list[Candidate] = []
        self._fetched = 0
        self._volume = Volume()
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
        return self._streams[_CALLS if self._tool_calling else _ANY]

    def prepare(self, page: Sequence[LoggedRecord]) -> Prepared:
        """Check `page` and route its valid records (pages are prepared in reading order)."""
        checks: list[list[str] | Rule] = []
        streams: list[int | None] = []
        offers: list[Offer] = []
        for logged in page:
            check = self._check(logged.source)
            checks.append(check)
            if isinstance(check, Rule):
                streams.append(None)
                continue
            if has_function_calls(logged.source):
                self._calls_prepared = True
                stream: int | None = _CALLS
            else:  # the stream of all valid records is no longer needed once one calls tools
                stream = None if self._calls_prepared else _ANY
            streams.append(stream)
            if stream is not None:
                offers.append((stream, check))
        return Prepared(page, checks, streams, offers)

    def settle(self, prepared: Prepared, verdicts: Sequence[Rule | None]) -> None:
        """Count the page's records and keep the new ones, in order, stopping once `done`."""
        pending = iter(verdicts)
        for logged, check, stream in zip(
            prepared.records, prepared.checks, prepared.streams, strict=True
        ):
            if self.done:
                return
            self._fetched += 1
            self._volume.add(logged.source)
            if isinstance(check, Rule):
                self._format_drops[check] += 1
                continue
            self._valid += 1
            if stream is None:
                continue  # dropped as no_tool_calls
            if stream == _CALLS:
                self._offered_calls += 1
            verdict = next(pending)
            if verdict is None:
                self._streams[stream].kept.append(len(self._candidates))
                self._streams[stream].tally.add(logged.source)
                self._candidates.append(_candidate(logged, check))
            else:
                self._streams[stream].dropped[verdict] += 1

    def selection(self) -> Selection:
        stream = self._chosen
        dropped = self._format_drops + stream.dropped
        if self._tool_calling:
            dropped[Rule.NO_TOOL_CALLS] += self._valid - self._offered_calls
        return Selection(
            candidates=[self._candidates[i] for i in stream.kept],
            workload_type=WorkloadType.TOOL_CALLING if self._tool_calling else WorkloadType.GENERIC,
            fetched=self._fetched,
            dropped=+dropped,
            baseline=production_baseline(stream.tally, self._volume),
        )

    def _check(self, source: Record) -> list[str] | Rule:
        rule = self._checker.check(source)
        return rule if rule is not None else user_turns(source)


async def collect(
    pages: AsyncIterable[Sequence[LoggedRecord]],
    collector: Collector,
    deduplication: Deduplication,
) -> Selection:
    """Read `pages` until the collector is done, deduplicating each page while the next one is
    read and checked."""
    waiting: deque[Prepared] = deque()
    async for page in pages:
        prepared = await asyncio.to_thread(collector.prepare, page)
        await deduplication.submit(prepared.offers)
        waiting.append(prepared)
        if len(waiting) > 1:
            await _settle(collector, waiting.popleft(), deduplication)
            if collector.done:
                break
    while waiting and not collector.done:
        await _settle(collector, waiting.popleft(), deduplication)
    return collector.selection()


async def _settle(collector: Collector, prepared: Prepared, deduplication: Deduplication) -> None:
    verdicts = await deduplication.verdicts()
    await asyncio.to_thread(collector.settle, prepared, verdicts)


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
