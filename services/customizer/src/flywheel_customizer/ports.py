"""What the customizer's logic needs from the outside world (its events go out through the
kit's `Emit`); adapters live in `clients/` and `repository.py`, fakes in
`flywheel_customizer.testing`."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from flywheel_contracts.run_config import CandidateConfig, TrainingConfig
from flywheel_contracts.runtime.lease import Lease as Lease  # the kit's, re-exported
from flywheel_contracts.runtime.nmp import CustomizationStatus
from flywheel_contracts.runtime.nmp.names import customization_job_name
from flywheel_customizer.jobs import CustomizationRecord, Phase


@dataclass(frozen=True)
class JobRequest:
    """Everything NMP needs to train one candidate's adapter for one run."""

    name_scope: str
    candidate: CandidateConfig
    training: TrainingConfig
    train_dataset: str

    @property
    def name(self) -> str:
        return customization_job_name(self.name_scope, self.candidate.model_name)


@dataclass(frozen=True)
class SubmittedJob:
    id: str
    output_model: str


class Training(Protocol):
    """NMP's Customizer and NIM proxy, as far as LoRA jobs go."""

    async def find_job(self, name: str) -> SubmittedJob | None:
        """The job submitted for `name` (`JobRequest.name`), if NMP has one."""

    async def submit(self, request: JobRequest) -> SubmittedJob:
        """Make sure the customization config exists, then create the job (not idempotent)."""

    async def status(self, job_id: str) -> CustomizationStatus:
        """C3; NmpNotFound when the job is gone."""

    async def cancel(self, job_id: str) -> None:
        """C7 unless the job has ended; a job NMP confirms gone counts as stopped. Raises
        (`CancelNotApplied`) when NMP answers 404 to the cancel but still runs the job."""

    async def served_models(self) -> frozenset[str]:
        """C8: the model ids the NIM proxy serves now."""


class Customizations(Protocol):
    """The customizer's records and the runs it was told to cancel."""

    async def add(self, record: CustomizationRecord) -> bool:
        """Insert `record`; False when one with its key exists already."""

    async def active(self) -> list[CustomizationRecord]:
        """Records whose `customization.done` is not published yet."""

    async def save(self, record: CustomizationRecord, *, expected: Phase) -> bool:
        """Replace the stored record if it is still in phase `expected`; False otherwise."""

    async def cancel_run(self, run_id: str, reason: str) -> None:
        """Remember that `run_id` is cancelled (idempotent; the first reason wins)."""

    async def cancellations(self, run_ids: Iterable[str]) -> dict[str, str]:
        """The cancelled ones among `run_ids`, with their reasons."""
