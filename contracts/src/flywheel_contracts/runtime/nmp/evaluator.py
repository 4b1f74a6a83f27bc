"""Evaluator on the nemo host: evaluation jobs (E1-E5)."""

from collections.abc import AsyncIterator, Mapping

import httpx

from .http import Call, HostCaller, is_conflict, read, segment
from .jobs import Stopped, stop_job
from .listing import every_item
from .models import AlreadyExists, EvaluationJob, EvaluationResults, EvaluationStatus


class Evaluator:
    def __init__(self, nemo: HostCaller, namespace: str, transfer_timeout: httpx.Timeout) -> None:
        self._http = nemo
        self._ns = namespace
        self._transfer_timeout = transfer_timeout

    @staticmethod
    def _job_path(job_id: str) -> str:
        return f"/v1/evaluation/jobs/{segment(job_id)}"

    async def launch(
        self,
        config: Mapping[str, object],
        target_model: str,
        *,
        custom_fields: Mapping[str, str] | None = None,
    ) -> EvaluationJob | AlreadyExists:
        """E1: POST /v1/evaluation/jobs in our namespace (NMP files a job without one under
        ``default``), evaluating ``target_model`` (a NIM model name, or a customized model id)
        with an inline evaluation config."""
        body = {
            "namespace": self._ns,
            "config": config,
            "target": {"type": "model", "model": target_model},
        }
        if custom_fields:
            body["custom_fields"] = dict(custom_fields)
        call = Call("POST", "/v1/evaluation/jobs", json=body, idempotent=False)
        result = await self._http.send(call, is_conflict)
        return result if isinstance(result, AlreadyExists) else read(result, EvaluationJob)

    async def job_status(self, job_id: str) -> EvaluationStatus:
        """E2: GET /v1/evaluation/jobs/{id}; ``status`` and ``status_details.progress``."""
        return read(await self._http.send(Call("GET", self._job_path(job_id))), EvaluationStatus)

    async def cancel_job(self, job_id: str) -> EvaluationJob:
        """POST /v1/evaluation/jobs/{id}/cancel: stops a job that is still running."""
        call = Call("POST", f"{self._job_path(job_id)}/cancel")
        return read(await self._http.send(call), EvaluationJob)

    async def stop_job(self, job_id: str) -> Stopped:
        """Cancel the job unless it has ended; a 404 counts only when a read confirms it."""
        return await stop_job(job_id, self.cancel_job, self.job_status)

    def list_jobs(self, **filters: str) -> AsyncIterator[EvaluationJob]:
        """GET /v1/evaluation/jobs in our namespace, every page."""
        wanted = {"namespace": self._ns, **filters}
        return every_item(self._http, "/v1/evaluation/jobs", EvaluationJob, filters=wanted)

    async def results(self, job_id: str) -> EvaluationResults:
        """E3: GET /v1/evaluation/jobs/{id}/results: ``{"tasks": {...}}``."""
        response = await self._http.send(Call("GET", f"{self._job_path(job_id)}/results"))
        return read(response, EvaluationResults)

    async def delete_job(self, job_id: str) -> None:
        """E4: DELETE /v1/evaluation/jobs/{id}."""
        call = Call("DELETE", self._job_path(job_id), headers={"Accept": "application/json"})
        await self._http.send(call)

    async def download_results(self, job_id: str) -> bytes:
        """E5: GET /v1/evaluation/jobs/{id}/download-results: a ZIP holding results.json."""
        call = Call(
            "GET", f"{self._job_path(job_id)}/download-results", timeout=self._transfer_timeout
        )
        return (await self._http.send(call)).content
