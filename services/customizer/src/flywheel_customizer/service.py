"""What the customizer does with its input events: record the work and hand it to the
reconciler. Nothing here talks to NMP, so a handler never blocks its partition on it."""

from collections.abc import Callable

import structlog

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import DeploymentRole, InFlightWork, NimUp, RunCancelled
from flywheel_contracts.runtime.clock import utc_now
from flywheel_customizer.jobs import CustomizationRecord
from flywheel_customizer.ports import Customizations
from flywheel_customizer.reconciler import Clock

IN_FLIGHT_KIND = "customization_job"

_log = structlog.get_logger(__name__)


class CustomizerService:
    def __init__(
        self, store: Customizations, wake: Callable[[], None], clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._wake = wake
        self._clock = clock

    async def on_nim_up(self, event: Envelope[NimUp]) -> None:
        """Record a customization for the candidate if it wants one; a redelivered or repeated
        `nim.up` for the same run and candidate finds the record already there."""
        candidate = event.payload.candidate
        if (
            event.payload.role is not DeploymentRole.CANDIDATE
            or not candidate.customization_enabled
        ):
            _log.debug("nim_up.no_customization", candidate=candidate.model_name)
            return
        record = CustomizationRecord.from_nim_up(event, self._clock())
        if await self._store.add(record):
            _log.info(
                "customization.requested", candidate=candidate.model_name, job_name=record.job_name
            )
            self._wake()
        else:
            _log.info("customization.already_requested", candidate=candidate.model_name)

    async def on_run_cancelled(self, event: Envelope[RunCancelled]) -> None:
        """Remember the cancellation, also for runs not seen yet (`nim.up` may come later: topics
        are not ordered with each other); the reconciler cancels the jobs."""
        assert event.run_id is not None  # run.cancelled is run-scoped
        await self._store.cancel_run(str(event.run_id), event.payload.reason)
        self._wake()

    async def in_flight(self) -> list[InFlightWork]:
        return [
            InFlightWork(run_id=record.run_uuid, kind=IN_FLIGHT_KIND, resource_id=record.job_id)
            for record in await self._store.active()
        ]
