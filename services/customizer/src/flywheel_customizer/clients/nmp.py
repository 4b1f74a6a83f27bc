"""The `Training` port on NMP: the shared client's C1, C2, C3, C7 and C8, plus the one call it
lacks, listing customization jobs, which finds a job by its deterministic name after a crash."""

from urllib.parse import urlencode

import httpx
import structlog
from pydantic import BaseModel, ConfigDict

from flywheel_contracts.runtime.nmp import (
    AlreadyExists,
    CustomizationConfigSpec,
    CustomizationStatus,
    Hyperparameters,
    LoraParams,
    NmpClient,
    NmpRetryableError,
    NmpSettings,
)
from flywheel_contracts.runtime.nmp.http import Call, read
from flywheel_customizer.ports import JobRequest, SubmittedJob

JOBS_PATH = "/v1/customization/jobs"
_PAGE_SIZE = 100

_log = structlog.get_logger(__name__)


class _ListedJob(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str | None = None
    output_model: str


class _Pagination(BaseModel):
    model_config = ConfigDict(extra="allow")

    total_pages: int | None = None


class _JobPage(BaseModel):
    """A page of `GET /v1/customization/jobs`; an NMP without `pagination` sends one page."""

    model_config = ConfigDict(extra="allow")

    data: list[_ListedJob]
    pagination: _Pagination | None = None


class NmpTraining:
    def __init__(
        self, settings: NmpSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._nmp = NmpClient(settings, transport=transport)

    async def aclose(self) -> None:
        await self._nmp.aclose()

    async def ping(self) -> None:
        """Readiness: the Customizer answers."""
        await self._page(1, page_size=1)

    async def find_job(self, name: str) -> SubmittedJob | None:
        """Pages through every job: only needed after a crash or an unanswered POST, and older
        NMP releases cannot filter the list by name."""
        page_number = 1
        while True:
            page = await self._page(page_number, page_size=_PAGE_SIZE)
            matches = [job for job in page.data if job.name == name]
            if matches:
                if len(matches) > 1:
                    _log.warning(
                        "customization.job_name_repeated", job_name=name, jobs=len(matches)
                    )
                return SubmittedJob(id=matches[0].id, output_model=matches[0].output_model)
            total = page.pagination.total_pages if page.pagination else None
            if total is None or page_number >= total or not page.data:
                return None
            page_number += 1

    async def submit(self, request: JobRequest) -> SubmittedJob:
        candidate, training = request.candidate, request.training
        assert candidate.customization_target is not None  # CandidateConfig's own rule
        config = CustomizationConfigSpec(
            target=candidate.customization_target,
            training_type=training.training_type.value,
            finetuning_type=training.finetuning_type.value,
            num_gpus=candidate.customization_gpus,
            max_seq_length=training.max_seq_length,
        )
        # Already there (409) is fine: the config is per base model and shared by runs.
        await self._nmp.customizer.create_config(candidate.model_name, config)
        created = await self._nmp.customizer.create_job(
            # The client names the job `customization-{workload_id}-{model}`; the scope puts the
            # run into the name (see jobs.name_scope).
            workload_id=request.name_scope,
            model_name=candidate.model_name,
            dataset_name=request.train_dataset,
            hyperparameters=Hyperparameters(
                training_type=training.training_type.value,
                finetuning_type=training.finetuning_type.value,
                epochs=training.epochs,
                batch_size=training.batch_size,
                learning_rate=training.learning_rate,
                lora=LoraParams(
                    adapter_dim=training.lora.adapter_dim,
                    adapter_dropout=training.lora.adapter_dropout,
                ),
            ),
        )
        if isinstance(created, AlreadyExists):  # an NMP that refuses duplicate job names
            found = await self.find_job(request.name)
            if found is None:
                raise NmpRetryableError(f"NMP reports job {request.name} exists but lists none")
            return found
        return SubmittedJob(id=created.id, output_model=created.output_model)

    async def status(self, job_id: str) -> CustomizationStatus:
        return await self._nmp.customizer.job_status(job_id)

    async def cancel(self, job_id: str) -> None:
        await self._nmp.customizer.cancel_job(job_id)

    async def served_models(self) -> frozenset[str]:
        return (await self._nmp.nim.list_models()).ids

    async def _page(self, number: int, *, page_size: int) -> _JobPage:
        query = urlencode({"page": number, "page_size": page_size})
        return read(await self._nmp.nemo.send(Call("GET", f"{JOBS_PATH}?{query}")), _JobPage)
