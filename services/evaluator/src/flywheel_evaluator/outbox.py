"""The outbox of eval.done: an outcome is recorded in Mongo first and published after, by the
worker (never by a handler, which would then wait on Kafka), and an outcome not yet acknowledged
is published again (same event id) until it is."""

import asyncio
from uuid import UUID

from flywheel_evaluator.events import EvaluationEvents
from flywheel_evaluator.ports import JobStore


class Outbox:
    def __init__(self, repository: JobStore, events: EvaluationEvents) -> None:
        self._repo = repository
        self._events = events
        # The worker's cycle and its finishing jobs both flush; one at a time, so an outcome
        # goes out once.
        self._lock = asyncio.Lock()

    async def flush(self, run_id: UUID | None = None) -> int:
        """Publish recorded but unpublished outcomes (of one run, or a batch of all); how many.
        The worker calls it every cycle, so a failed publish is retried there."""
        async with self._lock:
            jobs = await self._repo.unpublished(run_id)
            for job in jobs:
                await self._events.publish(self._events.done(job))
                await self._repo.mark_published(job.id)
            return len(jobs)
