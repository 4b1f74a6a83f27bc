"""Reclaiming through the shared NMP client: M3 delete deployments, C7 cancel training jobs,
cancel then E4 delete evaluation jobs, each followed by a check that the resource is really
gone. A 404 counts as "already gone" only when a read of the resource answers 404 too: a wrong
route or namespace also answers 404, while the resource keeps its GPUs.

The client already retries what may heal (5xx, timeouts) a bounded number of times; what still
fails is reported as failed with NMP's answer, and the stale sweep tries again later.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from flywheel_contracts.events import ResourceKind
from flywheel_contracts.runtime.nmp import NmpClient, NmpError, NmpNotFound, NmpSettings
from flywheel_contracts.runtime.nmp.jobs import ENDED_JOB_STATUSES, Stopped
from flywheel_janitor.config import ReclaimSettings
from flywheel_janitor.errors import ResourceStillPresent
from flywheel_janitor.ledger import Outcome, Target
from flywheel_janitor.ports import ReclaimResult

_GONE = ReclaimResult(Outcome.ALREADY_GONE)
_RECLAIMED = ReclaimResult(Outcome.RECLAIMED)


class NmpResources:
    """The `ResourceReclaimer` port on NMP. Deployments live in the namespace their `nim.up`
    named, so there is one client per namespace met (normally just the configured one)."""

    def __init__(
        self,
        settings: NmpSettings,
        reclaim: ReclaimSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._reclaim = reclaim
        self._transport = transport
        self._clients: dict[str, NmpClient] = {}

    def _client(self, namespace: str | None = None) -> NmpClient:
        namespace = namespace or self._settings.namespace
        client = self._clients.get(namespace)
        if client is None:
            settings = self._settings.model_copy(update={"namespace": namespace})
            client = self._clients[namespace] = NmpClient(settings, transport=self._transport)
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def reclaim(self, target: Target) -> ReclaimResult:
        try:
            if target.kind is ResourceKind.DEPLOYMENT:
                return await self._delete_deployment(target)
            if target.kind is ResourceKind.CUSTOMIZATION_JOB:
                return await self._cancel_customization(target.resource_id)
            if target.kind is ResourceKind.EVALUATION_JOB:
                return await self._delete_evaluation(target.resource_id)
        except (NmpError, ResourceStillPresent) as exc:
            return ReclaimResult(Outcome.FAILED, str(exc))
        return ReclaimResult(Outcome.FAILED, f"the janitor does not reclaim {target.kind.value}s")

    async def _delete_deployment(self, target: Target) -> ReclaimResult:
        deployments = self._client(target.namespace).deployments

        async def still_there() -> bool:
            await deployments.get(target.resource_id)
            return True

        try:
            await deployments.delete(target.resource_id)
        except NmpNotFound:
            if not await _present(still_there):
                return _GONE
            raise
        await self._until_gone(still_there, f"deployment {target.ref.id}")
        return _RECLAIMED

    async def _cancel_customization(self, job_id: str) -> ReclaimResult:
        customizer = self._client().customizer

        async def running() -> bool:
            return (await customizer.job_status(job_id)).status not in ENDED_JOB_STATUSES

        if await customizer.stop_job(job_id) is not Stopped.CANCELLED:
            return _GONE
        await self._until_gone(running, f"customization job {job_id}")
        return _RECLAIMED

    async def _delete_evaluation(self, job_id: str) -> ReclaimResult:
        """Cancel first (a deleted job that was still running may keep its workers), then
        delete the record of it."""
        evaluator = self._client().evaluator

        async def still_there() -> bool:
            await evaluator.job_status(job_id)
            return True

        if await evaluator.stop_job(job_id) is Stopped.GONE:
            return _GONE
        try:
            await evaluator.delete_job(job_id)
        except NmpNotFound:
            if not await _present(still_there):
                return _GONE
            raise
        await self._until_gone(still_there, f"evaluation job {job_id}")
        return _RECLAIMED

    async def _until_gone(self, present: Callable[[], Awaitable[bool]], what: str) -> None:
        """Poll `present` until it says no or NMP answers 404; ResourceStillPresent after
        `gone_timeout_s`."""
        deadline = time.monotonic() + self._reclaim.gone_timeout_s
        while True:
            try:
                if not await present():
                    return
            except NmpNotFound:
                return
            if time.monotonic() >= deadline:
                raise ResourceStillPresent(
                    f"{what} still there {self._reclaim.gone_timeout_s:g}s after it was reclaimed"
                )
            await asyncio.sleep(self._reclaim.gone_poll_s)


async def _present(read: Callable[[], Awaitable[bool]]) -> bool:
    """Whether a read still finds the resource (NmpNotFound: it does not)."""
    try:
        return await read()
    except NmpNotFound:
        return False
