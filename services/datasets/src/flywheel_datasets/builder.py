"""One run's datasets, from the log store to the files: read, filter, deduplicate, split, pick
ICL examples, format. No broker, no database: the service drives it and uploads the result.

The files are written a record at a time into a directory the caller owns (and removes), so a
training file of hundreds of megabytes is never held in memory.

CPU-heavy steps run in a worker thread so the event loop keeps serving the service's other
events and health checks while a large build is in progress; deduplication runs beside the read,
in a process of its own for large reads (the factory the builder is given) and in a worker thread
for small ones.
"""

import asyncio
import contextlib
import math
import os
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from flywheel_contracts.events import FilterStats, SplitCounts
from flywheel_contracts.events.baseline import ProductionBaseline
from flywheel_contracts.run_config import RunConfig, WorkloadType
from flywheel_datasets.config import BuildSettings
from flywheel_datasets.dedup_worker import (
    Deduplication,
    DeduplicationFactory,
    inline_deduplication,
)
from flywheel_datasets.errors import NotEnoughRecords, ReadInterrupted
from flywheel_datasets.formats import (
    EVAL_FILE,
    TRAIN_FILE,
    VAL_FILE,
    evaluation_record,
    training_record,
    write_jsonl,
)
from flywheel_datasets.icl import Embed, IclResult, example_pool, icl_records
from flywheel_datasets.pii import Scrubber
from flywheel_datasets.ports import RecordQuery, RecordSource
from flywheel_datasets.records import Record
from flywheel_datasets.rules import FORMAT_RULES, Rule
from flywheel_datasets.selection import STREAMS, Collector, Selection, collect
from flywheel_datasets.split import Split, split_records

_READ_ATTEMPTS = 3

_log = structlog.get_logger("flywheel.datasets.builder")


@dataclass(frozen=True)
class Built:
    """The files of the three datasets (eval, icl, train), by path in the dataset to path on
    disk, and what went into them."""

    workload_type: WorkloadType
    eval_files: dict[str, Path]
    icl_files: dict[str, Path]
    train_files: dict[str, Path]
    counts: SplitCounts
    stats: FilterStats
    stratified: bool
    baseline: ProductionBaseline | None = None  # the production traffic of the selected records
    icl_selection: str = ""
    """How the ICL examples were chosen: `uniform_distribution`, `semantic_similarity`, or
    `lexical_similarity` when the embeddings endpoint was unavailable (see `icl`)."""

    @property
    def size(self) -> int:
        """Bytes in all files."""
        files = (self.eval_files, self.icl_files, self.train_files)
        return sum(path.stat().st_size for group in files for path in group.values())


class DatasetBuilder:
    def __init__(
        self,
        source: RecordSource,
        embed: Embed,
        settings: BuildSettings,
        deduplication: DeduplicationFactory,
        window: timedelta | None = None,
    ) -> None:
        self._source = source
        self._embed = embed
        self._settings = settings
        self._deduplication = deduplication
        self._window = window

    async def build(self, config: RunConfig, until: datetime, directory: Path) -> Built:
        """`until` pins the newest record: rebuilding the run later reads the same records.
        The files are written under `directory`."""
        clock = _Stopwatch()
        selection = await self._select(config, until)
        clock.lap("read")
        _require_enough(config, selection, self._describe_window(until))
        seed = config.split.random_seed or 0
        split = await asyncio.to_thread(
            split_records,
            selection.candidates,
            eval_size=config.split.eval_size,
            val_ratio=config.split.val_ratio,
            seed=seed,
            near_threshold=self._settings.near_duplicate_threshold,
        )
        clock.lap("split")
        scrubber = Scrubber() if self._settings.pii.enabled else None
        prepare: Callable[[Record], Record] = scrubber.record if scrubber else _unchanged
        pool = await asyncio.to_thread(
            example_pool, split.train, self._settings.icl_pool_size, seed, prepare
        )
        evaluation = [prepare(candidate.record()) for candidate in split.eval]
        icl = await icl_records(evaluation, pool, config.icl, selection.workload_type, self._embed)
        clock.lap("icl")
        files = _Files(directory)
        await asyncio.to_thread(
            files.write, evaluation, icl, split, selection.workload_type, prepare
        )
        clock.lap("files")
        stats = _stats(selection, split, sum(scrubber.found.values()) if scrubber else 0)
        _log.info(
            "dataset.built",
            workload_type=selection.workload_type.value,
            fetched=stats.fetched,
            selected=stats.selected,
            production_model=selection.baseline.model,
            stratified=split.stratified,
            icl_selection=icl.selection,
            icl_fallback_reason=icl.fallback_reason,
            icl_examples=icl.examples,
            icl_short_of_minimum=icl.short_of_minimum,
            dropped=dict(stats.rules),
            seconds=clock.laps,
            cpu_seconds=clock.cpu_laps,
            deduplication_peak_rss_mib=_children_peak_rss_mib(),
        )
        return Built(
            workload_type=selection.workload_type,
            eval_files={EVAL_FILE: files.eval},
            icl_files={EVAL_FILE: files.icl},
            train_files={TRAIN_FILE: files.train, VAL_FILE: files.val},
            counts=SplitCounts(
                eval=len(split.eval),
                icl=len(icl.records),
                train=len(split.train),
                val=len(split.val),
            ),
            stats=stats,
            stratified=split.stratified,
            baseline=selection.baseline,
            icl_selection=icl.selection,
        )

    async def _select(self, config: RunConfig, until: datetime) -> Selection:
        query = RecordQuery(
            workload_id=config.workload_id,
            client_id=config.client_id,
            until=until,
            since=until - self._window if self._window else None,
        )
        for attempt in range(1, _READ_ATTEMPTS + 1):
            collector = Collector(
                limit=config.split.limit,
                max_fetch=math.ceil(config.split.limit * self._settings.max_scan_factor),
                max_tool_properties=self._settings.max_tool_properties,
                parse_arguments=config.split.parse_function_arguments,
            )
            try:
                # aclosing: stopping early must release the server-side cursor now, not at GC.
                async with (
                    self._deduplication_for(config.split.limit) as deduplication,
                    contextlib.aclosing(self._source.pages(query)) as pages,
                ):
                    return await collect(pages, collector, deduplication)
            except ReadInterrupted:
                if attempt == _READ_ATTEMPTS:
                    raise
                _log.warning("dataset.read_restarted", attempt=attempt, read=collector.fetched)
        raise AssertionError("unreachable")

    def _deduplication_for(
        self, limit: int
    ) -> contextlib.AbstractAsyncContextManager[Deduplication]:
        """`deduplication` (the service's: a process) for large reads, a worker thread else."""
        large = limit >= self._settings.deduplication_process_min_limit
        factory = self._deduplication if large else inline_deduplication
        return factory(self._settings.near_duplicate_threshold, STREAMS)

    def _describe_window(self, until: datetime) -> str:
        since = f" since {(until - self._window).isoformat()}" if self._window else ""
        return f"{since} up to {until.isoformat()}"


class _Stopwatch:
    """Seconds spent per stage, for the build's log line: wall clock, and the CPU time of the
    whole process and of its ended children (the deduplication process ends with the read; the
    count includes whatever else the service did meanwhile)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self.cpu_laps: dict[str, float] = {}
        self._last = time.perf_counter()
        self._last_cpu = _cpu_seconds()

    def lap(self, stage: str) -> None:
        now, cpu = time.perf_counter(), _cpu_seconds()
        self.laps[stage] = round(now - self._last, 3)
        self.cpu_laps[stage] = round(cpu - self._last_cpu, 3)
        self._last, self._last_cpu = now, cpu


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _children_peak_rss_mib() -> int:
    """The largest resident set of any ended child process (Linux counts KiB)."""
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def _unchanged(record: Record) -> Record:
    return record


def _require_enough(config: RunConfig, selection: Selection, window: str) -> None:
    if selection.fetched == 0:
        raise NotEnoughRecords(
            f"no records for workload {config.workload_id!r} and client {config.client_id!r}"
            f"{window}"
        )
    usable = len(selection.candidates)
    if usable < config.split.min_total_records:
        dropped = ", ".join(f"{rule.value} {count}" for rule, count in selection.dropped.items())
        raise NotEnoughRecords(
            f"{usable} usable records out of {selection.fetched} read for workload "
            f"{config.workload_id!r} (dropped: {dropped or 'none'}); the run needs at least "
            f"{config.split.min_total_records}",
            stats=_stats(selection, None, 0),
        )


class _Files:
    """Where the four files go: one folder per dataset, as laid out in the dataset.

    The folders are made here, not by the writing thread: a cancelled build cannot stop that
    thread, and once the caller has removed `directory` its writes must fail, not recreate it.
    """

    def __init__(self, directory: Path) -> None:
        self.eval = directory / "eval" / EVAL_FILE
        self.icl = directory / "icl" / EVAL_FILE
        self.train = directory / "train" / TRAIN_FILE
        self.val = directory / "train" / VAL_FILE
        for path in (self.eval, self.icl, self.train, self.val):
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(
        self,
        evaluation: list[Record],
        icl: IclResult,
        split: Split,
        workload: WorkloadType,
        prepare: Callable[[Record], Record],
    ) -> None:
        write_jsonl(self.eval, (evaluation_record(r) for r in evaluation))
        write_jsonl(self.icl, (evaluation_record(r) for r in icl.records))
        write_jsonl(
            self.train, (training_record(prepare(c.record()), workload) for c in split.train)
        )
        write_jsonl(self.val, (training_record(prepare(c.record()), workload) for c in split.val))


def _stats(selection: Selection, split: Split | None, pii_redactions: int) -> FilterStats:
    dropped: Counter[str] = Counter({rule.value: n for rule, n in selection.dropped.items()})
    leaked = split.leaked if split else Counter()
    dropped.update(leaked)
    selected = len(split.eval) + len(split.train) + len(split.val) if split else 0
    return FilterStats(
        fetched=selection.fetched,
        invalid_format=sum(n for rule, n in selection.dropped.items() if rule in FORMAT_RULES),
        unparsable_arguments=selection.dropped[Rule.UNPARSABLE_ARGUMENTS],
        duplicates=selection.dropped[Rule.DUPLICATE],
        near_duplicates=selection.dropped[Rule.NEAR_DUPLICATE],
        no_tool_calls=selection.dropped[Rule.NO_TOOL_CALLS],
        leaked=sum(leaked.values()),
        selected=selected,
        pii_redactions=pii_redactions,
        rules=dict(sorted(dropped.items())),
    )
