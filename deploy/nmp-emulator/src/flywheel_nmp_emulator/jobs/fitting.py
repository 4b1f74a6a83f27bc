"""Fitting stand-in adapters off the event loop.

A customization job's adapter is fitted from its whole training file: seconds for tens of
thousands of records. Done inside the scheduler's tick, that would hold every API request for
as long. Here the fit runs on one worker thread; the tick hands it the file's bytes once and
picks the outcome up on a later tick. A small file is waited for briefly on the tick that hands
it over, so with zero timings a job still completes on the request that made it due.

Nothing here is persisted: a fit lost to a restart is started again by the next tick, since the
job is still running with its training time up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

# How long the handing-over tick waits for a fit: enough for a few thousand records.
SYNCHRONOUS_GRACE_S = 0.25


@dataclass(frozen=True)
class Fitted:
    adapter_json: bytes
    """The adapter, serialized on the fitting thread too (it holds every training example)."""
    examples: int
    validation_accuracy: float | None


class AdapterFits:
    def __init__(self, grace_s: float = SYNCHRONOUS_GRACE_S) -> None:
        self._grace_s = grace_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapter-fit")
        self._fits: dict[str, Future[Fitted]] = {}

    def started(self, job_id: str) -> bool:
        return job_id in self._fits

    def start(self, job_id: str, fit: Callable[[], Fitted]) -> None:
        self._fits[job_id] = self._executor.submit(fit)
        wait([self._fits[job_id]], timeout=self._grace_s)

    def outcome(self, job_id: str) -> Fitted | None:
        """The job's fitted adapter once, or None while it is being fitted (or never was
        started). A fit that raised raises here."""
        future = self._fits.get(job_id)
        if future is None or not future.done():
            return None
        del self._fits[job_id]
        return future.result()

    def fitting(self) -> frozenset[str]:
        return frozenset(self._fits)

    def forget(self, job_ids: Iterable[str]) -> None:
        """Drop these jobs' fits (cancelled, reset away); one already running finishes unseen."""
        for job_id in job_ids:
            future = self._fits.pop(job_id, None)
            if future is not None:
                future.cancel()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
