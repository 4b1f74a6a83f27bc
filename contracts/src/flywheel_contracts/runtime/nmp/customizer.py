"""Customizer on the nemo host: configs (C1, C6) and LoRA jobs (C2, C3, C7), and the job list."""

from collections.abc import AsyncIterator, Mapping

from .http import Call, HostCaller, is_conflict, read, segment
from .jobs import Stopped, stop_job
from .listing import every_item
from .models import AlreadyExists, Created, CustomizationJob, CustomizationStatus
from .names import (
    customization_config_name,
    customization_config_ref,
    customization_job_name,
    output_model_name,
)
from .specs import CustomizationConfigSpec, Hyperparameters


class Customizer:
    def __init__(self, nemo: HostCaller, namespace: str) -> None:
        self._http = nemo
        self._ns = namespace

    async def create_config(
        self, base_model: str, spec: CustomizationConfigSpec
    ) -> Created | AlreadyExists:
        """C1: POST /v1/customization/configs named ``{model}@v1.0.0+dfw``."""
        training_option = spec.model_dump(
            exclude={"target", "training_precision", "max_seq_length"}
        )
        body = {
            "name": customization_config_name(base_model),
            "namespace": self._ns,
            "target": spec.target,
            "training_options": [training_option],
            "training_precision": spec.training_precision,
            "max_seq_length": spec.max_seq_length,
        }
        return await self._http.create(Call("POST", "/v1/customization/configs", json=body))

    async def create_job(
        self,
        *,
        workload_id: str,
        model_name: str,
        dataset_name: str,
        hyperparameters: Hyperparameters,
        custom_fields: Mapping[str, str] | None = None,
    ) -> CustomizationJob | AlreadyExists:
        """C2: POST /v1/customization/jobs in our namespace (NMP files a job without one under
        ``default``); the answer's ``output_model`` is the model to use. NMP echoes
        ``custom_fields`` on every read of the job, which is how a caller recognises it later."""
        body = {
            "name": customization_job_name(workload_id, model_name),
            "namespace": self._ns,
            "output_model": output_model_name(self._ns, model_name),
            "config": customization_config_ref(self._ns, model_name),
            "dataset": {"name": dataset_name, "namespace": self._ns},
            "hyperparameters": hyperparameters.model_dump(),
        }
        if custom_fields:
            body["custom_fields"] = dict(custom_fields)
        call = Call("POST", "/v1/customization/jobs", json=body, idempotent=False)
        result = await self._http.send(call, is_conflict)
        return result if isinstance(result, AlreadyExists) else read(result, CustomizationJob)

    async def job_status(self, job_id: str) -> CustomizationStatus:
        """C3: GET /v1/customization/jobs/{id}/status."""
        response = await self._http.send(
            Call("GET", f"/v1/customization/jobs/{segment(job_id)}/status")
        )
        return read(response, CustomizationStatus)

    async def cancel_job(self, job_id: str) -> CustomizationJob:
        """C7: POST /v1/customization/jobs/{id}/cancel (the SDK's path; the blueprint's
        ``/v1/customizations/{id}/cancel`` does not exist on NMP). NmpNotFound says only that
        NMP did not find it there: callers confirm a job is gone with a read."""
        call = Call("POST", f"/v1/customization/jobs/{segment(job_id)}/cancel")
        return read(await self._http.send(call), CustomizationJob)

    async def stop_job(self, job_id: str) -> Stopped:
        """Cancel the job unless it has ended; a 404 counts only when a read confirms it."""
        return await stop_job(job_id, self.cancel_job, self.job_status)

    def list_jobs(self, **filters: str) -> AsyncIterator[CustomizationJob]:
        """GET /v1/customization/jobs in our namespace, every page; ``filters`` as NMP's
        ``filter[...]`` (e.g. ``status="running"``)."""
        wanted = {"namespace": self._ns, **filters}
        return every_item(self._http, "/v1/customization/jobs", CustomizationJob, filters=wanted)

    async def delete_config(self, base_model: str) -> None:
        """C6: DELETE /v1/customization/configs/{ns}/{model}@v1.0.0+dfw."""
        name = customization_config_name(base_model)
        await self._http.send(
            Call("DELETE", f"/v1/customization/configs/{segment(self._ns)}/{segment(name)}")
        )
