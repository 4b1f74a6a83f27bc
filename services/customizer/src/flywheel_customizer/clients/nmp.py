"""The `Training` port on NMP: the shared client's C1, C2, C3, C7, C8 and its job list.

A job is recognised after a crash by the key it carries in `custom_fields`: NMP echoes
`custom_fields` on every read of a job, while a job's `name` is not part of NMP's job object
(the official SDK's `CustomizationJob` has none)."""

import httpx
import structlog

from flywheel_contracts.runtime.nmp import (
    AlreadyExists,
    CustomizationConfigSpec,
    CustomizationJob,
    CustomizationStatus,
    Hyperparameters,
    LoraParams,
    NmpClient,
    NmpProtocolError,
    NmpRetryableError,
    NmpSettings,
)
from flywheel_customizer.ports import JobRequest, SubmittedJob

JOB_KEY_FIELD = "flywheel_job"
"""The `custom_fields` entry holding a job's deterministic key (`JobRequest.name`)."""

_log = structlog.get_logger(__name__)


class NmpTraining:
    def __init__(
        self, settings: NmpSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._nmp = NmpClient(settings, transport=transport)

    async def aclose(self) -> None:
        await self._nmp.aclose()

    async def ping(self) -> None:
        """Readiness: the Customizer answers its job list."""
        async for _ in self._nmp.customizer.list_jobs():
            break

    async def find_job(self, name: str) -> SubmittedJob | None:
        """The job of our namespace whose `custom_fields` carry `name`. Pages through every
        job: only needed after a crash or an unanswered POST."""
        matches = [
            job
            async for job in self._nmp.customizer.list_jobs()
            if job.namespace == self._nmp.settings.namespace
            and (job.custom_fields or {}).get(JOB_KEY_FIELD) == name
        ]
        if not matches:
            return None
        if len(matches) > 1:
            _log.warning("customization.job_key_repeated", job_name=name, jobs=len(matches))
        return _submitted(matches[0])

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
            custom_fields={JOB_KEY_FIELD: request.name},
        )
        if isinstance(created, AlreadyExists):  # an NMP that refuses duplicate job names
            found = await self.find_job(request.name)
            if found is None:
                raise NmpRetryableError(f"NMP reports job {request.name} exists but lists none")
            return found
        return _submitted(created)

    async def status(self, job_id: str) -> CustomizationStatus:
        return await self._nmp.customizer.job_status(job_id)

    async def cancel(self, job_id: str) -> None:
        stopped = await self._nmp.customizer.stop_job(job_id)
        _log.info("customization.job_stop", job_id=job_id, outcome=stopped.value)

    async def served_models(self) -> frozenset[str]:
        return (await self._nmp.nim.list_models()).ids


def _submitted(job: CustomizationJob) -> SubmittedJob:
    if job.output_model is None:
        raise NmpProtocolError(f"customization job {job.id} has no output_model")
    return SubmittedJob(id=job.id, output_model=job.output_model)
