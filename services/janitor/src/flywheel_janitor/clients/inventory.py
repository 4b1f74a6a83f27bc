"""What NMP actually runs in Flywheel's namespace, for the orphan sweep: the shared client's
list calls (deployments, customization and evaluation jobs), every page, filtered to the
namespace by NMP and checked again here. Only this adapter knows; the sweep sees the
`Inventory` port.
"""

import httpx

from flywheel_contracts.events import ResourceKind
from flywheel_contracts.runtime.nmp import NmpClient, NmpSettings
from flywheel_contracts.runtime.nmp.jobs import ENDED_JOB_STATUSES
from flywheel_janitor.ledger import Target


class NmpInventory:
    """The `Inventory` port: deployments in any state, and jobs not yet ended."""

    def __init__(
        self,
        settings: NmpSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._namespace = settings.namespace
        self._nmp = NmpClient(settings, transport=transport)

    async def aclose(self) -> None:
        await self._nmp.aclose()

    async def ping(self) -> None:
        """Readiness: Deployment Management answers its list."""
        async for _ in self._nmp.deployments.list():
            break

    async def live_resources(self) -> list[Target]:
        ns = self._namespace
        targets = [
            Target(kind=ResourceKind.DEPLOYMENT, resource_id=item.name, namespace=ns)
            async for item in self._nmp.deployments.list()
            if item.name is not None and item.namespace == ns
        ]
        targets += [
            Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id=job.id)
            async for job in self._nmp.customizer.list_jobs()
            if job.namespace == ns and job.status not in ENDED_JOB_STATUSES
        ]
        targets += [
            Target(kind=ResourceKind.EVALUATION_JOB, resource_id=job.id)
            async for job in self._nmp.evaluator.list_jobs()
            if job.namespace == ns and job.status not in ENDED_JOB_STATUSES
        ]
        return targets
