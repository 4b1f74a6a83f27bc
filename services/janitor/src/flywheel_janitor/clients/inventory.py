"""What NMP actually runs in Flywheel's namespace, for the orphan sweep.

nmp-contract.md has no list calls (the blueprint never lists), so the shared client has none.
These are NMP's collection endpoints, which the emulator serves as well:
GET /v1/deployment/model-deployments, /v1/customization/jobs and /v1/evaluation/jobs. NMP pages
them (`page`, `page_size`, a `pagination` object in the answer); the emulator answers with
everything and no `pagination`. Only this adapter knows; the sweep sees the `Inventory` port.
"""

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from flywheel_contracts.events import ResourceKind
from flywheel_contracts.runtime.nmp import NmpClient, NmpSettings
from flywheel_contracts.runtime.nmp.http import Call, read
from flywheel_janitor.clients.nmp import FINISHED_JOB_STATES
from flywheel_janitor.ledger import Target

DEPLOYMENTS = "/v1/deployment/model-deployments"
CUSTOMIZATION_JOBS = "/v1/customization/jobs"
EVALUATION_JOBS = "/v1/evaluation/jobs"

_MAX_PAGES = 1000


class _Pagination(BaseModel):
    model_config = ConfigDict(extra="allow")

    page: int = 1
    total_pages: int = 1


class _Page(BaseModel):
    model_config = ConfigDict(extra="allow")

    data: list[dict[str, Any]]
    pagination: _Pagination | None = None


class NmpInventory:
    """The `Inventory` port: deployments in any state, and jobs not yet finished."""

    def __init__(
        self,
        settings: NmpSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        page_size: int = 100,
    ) -> None:
        self._namespace = settings.namespace
        self._page_size = page_size
        self._nmp = NmpClient(settings, transport=transport)
        self._http = self._nmp.nemo

    async def aclose(self) -> None:
        await self._nmp.aclose()

    async def ping(self) -> None:
        """Readiness: Deployment Management answers a one-item list."""
        await self._page(DEPLOYMENTS, 1, page_size=1)

    async def live_resources(self) -> list[Target]:
        deployments = [
            Target(
                kind=ResourceKind.DEPLOYMENT, resource_id=item["name"], namespace=self._namespace
            )
            for item in await self._list(DEPLOYMENTS)
            if isinstance(item.get("name"), str)
        ]
        jobs = [
            Target(kind=kind, resource_id=item["id"])
            for kind, path in (
                (ResourceKind.CUSTOMIZATION_JOB, CUSTOMIZATION_JOBS),
                (ResourceKind.EVALUATION_JOB, EVALUATION_JOBS),
            )
            for item in await self._list(path)
            if isinstance(item.get("id"), str) and item.get("status") not in FINISHED_JOB_STATES
        ]
        return deployments + jobs

    async def _list(self, path: str) -> list[dict[str, Any]]:
        """Every item of the collection in Flywheel's namespace."""
        items: list[dict[str, Any]] = []
        for number in range(1, _MAX_PAGES + 1):
            page = await self._page(path, number, page_size=self._page_size)
            items.extend(page.data)
            if page.pagination is None or number >= page.pagination.total_pages:
                break
        return [item for item in items if item.get("namespace") == self._namespace]

    async def _page(self, path: str, number: int, *, page_size: int) -> _Page:
        query = httpx.QueryParams(page=number, page_size=page_size)
        response = await self._http.send(Call("GET", f"{path}?{query}"))
        return read(response, _Page)
