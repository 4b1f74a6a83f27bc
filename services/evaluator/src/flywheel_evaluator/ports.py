"""What the service and the outbox need from storage (EvaluationRepository in production, an
in-memory fake in unit tests)."""

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from flywheel_evaluator.models import EvaluationJob


class JobStore(Protocol):
    async def create(self, job: EvaluationJob) -> bool: ...

    async def mark_run_cancelled(self, run_id: UUID, at: datetime) -> None: ...

    async def is_run_cancelled(self, run_id: UUID) -> bool: ...

    async def live_jobs_of_run(self, run_id: UUID) -> list[EvaluationJob]: ...

    async def cancel(self, job_id: str, outcome: dict[str, Any], at: datetime) -> bool: ...

    async def unpublished(
        self, run_id: UUID | None = None, limit: int = 100
    ) -> list[EvaluationJob]: ...

    async def mark_published(self, job_id: str) -> None: ...
