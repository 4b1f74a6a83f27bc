"""What the service needs from the outside world; adapters in repository.py and clients/ (the
lease, and the `Emit` its events go out through, are the kit's), fakes in the unit tests."""

from collections.abc import Iterable, Sequence
from typing import Protocol
from uuid import UUID

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import DatasetFailed, DatasetReady, RunCancelled
from flywheel_contracts.run_config import CandidateConfig
from flywheel_contracts.runtime.clock import Clock as Clock  # the kit's
from flywheel_contracts.runtime.lease import Lease as Lease  # the kit's, re-exported
from flywheel_nim_manager.records import CandidateRecord, Phase, RunRecord, WorkItem, WorkOutcome


class Repository(Protocol):
    """Runs and candidates. Handlers record inputs; only the active scheduler moves phases."""

    async def add_ready(
        self, ready: Envelope[DatasetReady], candidates: Sequence[CandidateRecord]
    ) -> bool:
        """Record the run's datasets and queue its candidates, once; False if already known."""
        ...

    async def add_cancelled(self, cancelled: Envelope[RunCancelled]) -> None: ...

    async def add_dataset_failed(self, failed: Envelope[DatasetFailed]) -> None: ...

    async def record_outcome(
        self, run_id: UUID, model: str, item: WorkItem, outcome: WorkOutcome
    ) -> bool:
        """Store how a piece of work ended; False when the candidate is unknown."""
        ...

    async def open_runs(self) -> list[RunRecord]:
        """Runs whose terminal event is not published yet."""
        ...

    async def candidates(self, run_ids: Iterable[UUID]) -> list[CandidateRecord]: ...

    async def save(self, record: CandidateRecord, expected: Phase) -> bool:
        """Store the scheduler's fields of `record` if its phase is still `expected`."""
        ...

    async def finish_run(self, run_id: UUID) -> None: ...


class Deployer(Protocol):
    """NMP Deployment Management and the NIM proxy's model list."""

    async def create(self, name: str, candidate: CandidateConfig) -> None:
        """Request the deployment; one that already exists under `name` is adopted."""
        ...

    async def status(self, name: str) -> str | None:
        """Its status (`pending`, `ready`, `failed` ...), None when it does not exist."""
        ...

    async def delete(self, name: str) -> None:
        """Ask NMP to remove it; a deployment already gone is fine."""
        ...

    async def served_models(self) -> frozenset[str]: ...
