"""NmpClient: one async client for the three NMP hosts, grouped by NMP service."""

import asyncio
from types import TracebackType
from typing import Self

import httpx

from .customizer import Customizer
from .data_store import DataStore
from .deployments import Deployments
from .entity_store import EntityStore
from .evaluator import Evaluator
from .http import HostCaller, RetryPolicy, Sleep
from .nim import NimProxy
from .settings import NmpSettings


class NmpClient:
    """Every call of nmp-contract.md, as ``client.<service>.<call>()``.

    ``transport`` replaces the network (tests pass an httpx.MockTransport); ``sleep`` replaces
    the wait between retries.
    """

    def __init__(
        self,
        settings: NmpSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        timeout = httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
        transfer = httpx.Timeout(settings.transfer_timeout_s, connect=settings.connect_timeout_s)
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        )
        policy = RetryPolicy(
            settings.retry_attempts, settings.retry_backoff_s, settings.retry_backoff_max_s
        )
        datastore_headers = (
            {"Authorization": f"Bearer {settings.hf_token.get_secret_value()}"}
            if settings.hf_token
            else {}
        )

        def client(base_url: str, headers: dict[str, str], *, follow: bool) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                base_url=base_url,
                headers=headers,
                timeout=timeout,
                limits=limits,
                transport=transport,
                follow_redirects=follow,
            )

        self._clients = (
            client(settings.nemo_base_url, {}, follow=False),
            client(settings.nim_base_url, {}, follow=False),
            # Hub-style downloads may redirect to blob storage.
            client(settings.datastore_base_url, datastore_headers, follow=True),
        )
        nemo, nim, datastore = (HostCaller(c, policy, sleep) for c in self._clients)
        # The ingress host, with this client's timeouts and retries, for NMP calls outside
        # nmp-contract.md.
        self.nemo = nemo
        namespace = settings.namespace
        self.entity_store = EntityStore(nemo, namespace)
        self.data_store = DataStore(datastore, namespace, transfer)
        self.customizer = Customizer(nemo, namespace)
        self.evaluator = Evaluator(nemo, namespace, transfer)
        self.deployments = Deployments(nemo, namespace)
        self.nim = NimProxy(nim)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
