"""What the ingest logic needs from the outside, as protocols: the tests plug in fakes, the app
plugs in Kafka and Elasticsearch (`clients/`, `indexer.py`)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flywheel_contracts.events.records import RecordsIngested, RejectedRecord
from flywheel_ingest.documents import Document, RawLine

PartitionKey = tuple[str, int]
"""(topic, partition)"""


@dataclass(slots=True)
class IndexResult:
    """What the store did with each document of one bulk request."""

    created: list[Document] = field(default_factory=list)
    duplicates: list[Document] = field(default_factory=list)
    retry: list[Document] = field(default_factory=list)
    refused: list[tuple[Document, str]] = field(default_factory=list)


class LogStore(Protocol):
    async def index(self, documents: Sequence[Document]) -> IndexResult:
        """Store `documents` under their ids; raises StoreUnavailable when nothing was taken."""
        ...


class Outbox(Protocol):
    async def reject(self, records: Sequence[RejectedRecord]) -> None:
        """Publish to logs.rejected; raises OutboxUnavailable naming those not acknowledged."""
        ...

    async def announce(self, batch: RecordsIngested) -> None:
        """Publish records.ingested; raises OutboxUnavailable when not acknowledged."""
        ...


class Source(Protocol):
    """The partitions of the source topic this instance reads, with manual commits."""

    async def fetch(self, max_lines: int, timeout_s: float) -> list[RawLine]:
        """Up to `max_lines` next lines; fewer (or none) when `timeout_s` passes first."""
        ...

    async def pause(self) -> None:
        """Stop fetching; no line is skipped or handed out twice across a pause and resume."""
        ...

    async def keep_alive(self) -> None:
        """While paused: stay in the consumer group (call at least every few seconds)."""
        ...

    async def resume(self) -> None: ...

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Commit the next offset to read per partition; a lost commit only means a redelivery."""
        ...
