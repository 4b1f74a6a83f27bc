"""Customizer on the nemo host: configs (C1, C6) and LoRA jobs (C2, C3, C7)."""

from .http import Call, HostCaller, is_conflict, read, segment
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
    ) -> CustomizationJob | AlreadyExists:
        """C2: POST /v1/customization/jobs; the answer's ``output_model`` is the model to use."""
        body = {
            "name": customization_job_name(workload_id, model_name),
            "output_model": output_model_name(self._ns, model_name),
            "config": customization_config_ref(self._ns, model_name),
            "dataset": {"name": dataset_name, "namespace": self._ns},
            "hyperparameters": hyperparameters.model_dump(),
        }
        call = Call("POST", "/v1/customization/jobs", json=body, idempotent=False)
        result = await self._http.send(call, is_conflict)
        return result if isinstance(result, AlreadyExists) else read(result, CustomizationJob)

    async def job_status(self, job_id: str) -> CustomizationStatus:
        """C3: GET /v1/customization/jobs/{id}/status."""
        response = await self._http.send(
            Call("GET", f"/v1/customization/jobs/{segment(job_id)}/status")
        )
        return read(response, CustomizationStatus)

    async def cancel_job(self, job_id: str) -> None:
        """C7: POST /v1/customizations/{id}/cancel. The odd path (plural, no /jobs/) is NMP's as
        the blueprint calls it; the emulator answers the same path."""
        await self._http.send(Call("POST", f"/v1/customizations/{segment(job_id)}/cancel"))

    async def delete_config(self, base_model: str) -> None:
        """C6: DELETE /v1/customization/configs/{ns}/{model}@v1.0.0+dfw."""
        name = customization_config_name(base_model)
        await self._http.send(
            Call("DELETE", f"/v1/customization/configs/{segment(self._ns)}/{segment(name)}")
        )
