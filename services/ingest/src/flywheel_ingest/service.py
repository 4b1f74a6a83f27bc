"""Ingest's logic for one batch of raw lines: validate, normalize, redact, then store the valid
records, publish the refused ones with their reason, and announce the batch.

`prepare` is pure CPU work (run off the event loop); `deliver` retries every effect with backoff
until it is acknowledged, so a batch is never half-done when its offsets are committed.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
import structlog

from flywheel_contracts.events.records import (
    RecordsIngested,
    RejectedRecord,
    RejectReason,
    WorkloadCount,
)
from flywheel_contracts.pii import PiiKind
from flywheel_contracts.runtime.clock import Clock, utc_now
from flywheel_ingest import metrics
from flywheel_ingest.config import ProducerSettings, RetrySettings, ScopedToken
from flywheel_ingest.documents import (
    Document,
    RawLine,
    canonical_json,
    document_id,
    stored_body,
)
from flywheel_ingest.duplicates import SeenCalls
from flywheel_ingest.errors import OutboxUnavailable, StoreUnavailable
from flywheel_ingest.pii import Redactor
from flywheel_ingest.ports import LogStore, Outbox
from flywheel_ingest.producers import Format
from flywheel_ingest.producers.translate import verdict
from flywheel_ingest.scope import scope_refusal
from flywheel_ingest.validation import Refusal

_log = structlog.get_logger("flywheel.ingest")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class PreparedBatch:
    """A batch after the CPU work: what to store and what to refuse."""

    lines: int
    documents: list[Document] = field(default_factory=list)
    rejections: list[RejectedRecord] = field(default_factory=list)
    pii: Counter[PiiKind] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a delivered batch amounted to."""

    lines: int
    created: int
    duplicates: int
    rejected: int


class _Backoff:
    def __init__(self, settings: RetrySettings, sleep: Sleep) -> None:
        self._delay = settings.backoff_initial_s
        self._max = settings.backoff_max_s
        self._sleep = sleep

    async def wait(self) -> None:
        await self._sleep(self._delay)
        self._delay = min(self._delay * 2, self._max)


class IngestService:
    def __init__(
        self,
        store: LogStore,
        outbox: Outbox,
        redactor: Redactor,
        *,
        max_line_bytes: int,
        retry: RetrySettings,
        producers: ProducerSettings = ProducerSettings(),  # noqa: B008 (frozen, immutable)
        tokens: Mapping[str, ScopedToken] | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._redactor = redactor
        self._max_line_bytes = max_line_bytes
        self._retry = retry
        self._producers = producers
        self._tokens = tokens or {}
        self._clock = clock
        self._sleep = sleep

    # CPU part.

    def prepare(self, lines: Sequence[RawLine]) -> PreparedBatch:
        batch = PreparedBatch(lines=len(lines))
        seen = SeenCalls()
        for line in lines:
            try:
                outcome = self._prepare_one(line, batch.pii, seen)
            except Exception as exc:
                # A bug must not stall the partition or drop the line: refuse it, loudly.
                _log.exception("record.unprocessable", offset=line.offset)
                outcome = Refusal(
                    RejectReason.NOT_OPENAI_FORMAT,
                    f"ingest could not process the record ({type(exc).__name__}: {exc})",
                )
            if isinstance(outcome, Refusal):
                batch.rejections.append(self._rejection(line, outcome.reason, outcome.message))
            else:
                batch.documents.append(outcome)
        return batch

    def _prepare_one(
        self, line: RawLine, pii: Counter[PiiKind], seen: SeenCalls
    ) -> Document | Refusal:
        checked = verdict(line.value, line.format, self._producers, self._max_line_bytes)
        if isinstance(checked, Refusal):
            return checked
        if out_of_scope := scope_refusal(checked.client_id, line.token, self._tokens):
            return out_of_scope
        try:
            logged = canonical_json(checked.fields)
        except orjson.JSONEncodeError as exc:
            # orjson parses 1024 levels of nesting but writes only 254.
            return Refusal(RejectReason.INVALID_JSON, f"cannot be stored as JSON: {exc}")
        # The id comes from what the application logged, so changing the redaction settings
        # (or what ingest adds to the stored document) never turns a redelivered line into a
        # second document.
        doc_id = document_id(logged)
        if line.format != Format.RECORD and (duplicate := seen.refusal(checked, doc_id)):
            return duplicate
        if self._redactor.applies_to(checked.workload_id):
            pii.update(self._redactor.redact(checked.fields))
        body = stored_body(checked.fields)
        return Document(doc_id, body, checked.workload_id, checked.client_id, line)

    def _rejection(self, line: RawLine, reason: RejectReason, message: str) -> RejectedRecord:
        return RejectedRecord.of(
            line.value,
            reason=reason,
            message=message,
            source=line.position(),
            rejected_at=self._clock(),
        )

    # I/O part.

    async def deliver(self, batch: PreparedBatch) -> Delivered:
        """Store, reject and announce; returns once every effect is acknowledged."""
        stored, _ = await asyncio.gather(
            self._index(batch.documents), self._publish_rejections(batch.rejections)
        )
        created, duplicates, refused = stored
        self._count_stored(batch, created=len(created), duplicates=len(duplicates))
        refusals = [
            self._rejection(
                doc.source, RejectReason.NOT_OPENAI_FORMAT, f"Elasticsearch refused it: {error}"
            )
            for doc, error in refused
        ]
        await self._publish_rejections(refusals)
        rejections = [*batch.rejections, *refusals]
        await self._announce(_summary([*created, *duplicates], rejected=len(rejections)))
        metrics.BATCH_RECORDS.observe(batch.lines)
        metrics.BATCH_SECONDS.observe(time.monotonic() - batch.started)
        return Delivered(batch.lines, len(created), len(duplicates), len(rejections))

    async def _index(
        self, documents: list[Document]
    ) -> tuple[list[Document], list[Document], list[tuple[Document, str]]]:
        created: list[Document] = []
        duplicates: list[Document] = []
        refused: list[tuple[Document, str]] = []
        pending: Sequence[Document] = documents
        backoff = _Backoff(self._retry, self._sleep)
        while pending:
            try:
                result = await self._store.index(pending)
            except StoreUnavailable as exc:
                _log.warning("store.unavailable", error=str(exc), documents=len(pending))
            else:
                created += result.created
                duplicates += result.duplicates
                refused += result.refused
                pending = result.retry
                if not pending:
                    break
                _log.warning("store.partial", retry=len(pending))
            metrics.STORE_RETRIES.inc()
            await backoff.wait()
        return created, duplicates, refused

    async def _publish_rejections(self, rejections: Sequence[RejectedRecord]) -> None:
        pending = rejections
        backoff = _Backoff(self._retry, self._sleep)
        while pending:
            try:
                await self._outbox.reject(pending)
            except OutboxUnavailable as exc:
                _log.warning("outbox.unavailable", error=str(exc), pending=len(exc.pending))
                still_pending = {id(record) for record in exc.pending}
                _count_rejected(r for r in pending if id(r) not in still_pending)
                pending = exc.pending
                metrics.OUTBOX_RETRIES.inc()
                await backoff.wait()
            else:
                _count_rejected(pending)
                return

    async def _announce(self, summary: RecordsIngested) -> None:
        backoff = _Backoff(self._retry, self._sleep)
        while True:
            try:
                await self._outbox.announce(summary)
            except OutboxUnavailable as exc:
                _log.warning("outbox.unavailable", error=str(exc), topic=summary.EVENT_TYPE)
                metrics.OUTBOX_RETRIES.inc()
                await backoff.wait()
            else:
                return

    @staticmethod
    def _count_stored(batch: PreparedBatch, *, created: int, duplicates: int) -> None:
        metrics.RECORDS.labels("indexed").inc(created)
        metrics.RECORDS.labels("duplicate").inc(duplicates)
        for kind, count in batch.pii.items():
            metrics.PII_REDACTED.labels(kind.value).inc(count)


def _count_rejected(rejections: Iterable[RejectedRecord]) -> None:
    """Counted once Kafka acknowledged them, which may be long before the batch is stored."""
    by_reason = Counter(r.reason for r in rejections)
    for reason, count in by_reason.items():
        metrics.REJECTED.labels(reason.value).inc(count)
    metrics.RECORDS.labels("rejected").inc(sum(by_reason.values()))


def _summary(stored: Sequence[Document], *, rejected: int) -> RecordsIngested:
    """Counts of the batch's records now in the store (created, or already there from an
    earlier delivery of the same lines), per workload and client."""
    counts = Counter((doc.workload_id, doc.client_id) for doc in stored)
    return RecordsIngested(
        counts=tuple(
            WorkloadCount(workload_id=workload, client_id=client, records=records)
            for (workload, client), records in sorted(counts.items())
        ),
        indexed=len(stored),
        rejected=rejected,
    )
