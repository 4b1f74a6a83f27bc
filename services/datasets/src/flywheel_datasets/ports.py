"""What the build needs from the outside world, as protocols the clients and the fakes fulfil."""

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from flywheel_contracts.events import DatasetRef
from flywheel_datasets.selection import LoggedRecord


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """One workload's records from one client, logged in [since, until], newest first."""

    workload_id: str
    client_id: str
    until: datetime
    since: datetime | None = None


class RecordSource(Protocol):
    def pages(self, query: RecordQuery) -> AsyncGenerator[list[LoggedRecord], None]:
        """Pages of records, newest first; stopping early releases the server-side cursor.

        Raises LogStoreUnavailable when the store stays unreachable, ReadInterrupted when the
        server lost the cursor (the read can be started again)."""
        ...


class Embedder(Protocol):
    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class DatasetStore(Protocol):
    async def publish(self, name: str, files: Mapping[str, Path]) -> DatasetRef:
        """Create (or reuse) the dataset `name`, upload `files` (path in the dataset -> file on
        disk), register it; publishing the same name again is harmless. UploadFailed when NMP
        refuses."""
        ...

    async def delete(self, name: str) -> None:
        """Remove the dataset's files and registration; a missing one is not an error."""
        ...
