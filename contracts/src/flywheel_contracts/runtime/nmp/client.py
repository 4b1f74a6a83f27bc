"""NmpClient: one async client for the three NMP hosts, grouped by NMP service."""

import asyncio
import ssl
from types import TracebackType
from typing import Self

import httpx

from flywheel_contracts.runtime.secrets import bearer_headers

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
    the wait between retries. The platform key's file, if any, is read here (SecretFileError,
    naming the file only, when it cannot be).
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
        # Each host's client carries only its own secret: the platform key goes to the platform
        # and the NIM proxy, the HF token to the Data Store. Neither follows redirects off its
        # host with the key (the first two follow none; httpx drops Authorization when a
        # Data Store redirect leaves its origin).
        platform_headers = bearer_headers(settings.platform_key())
        datastore_headers = bearer_headers(settings.hf_token or None)
        # One context for the three hosts: loading a CA bundle is not free.
        verify: ssl.SSLContext | bool = settings.tls() or True

        def client(base_url: str, headers: dict[str, str], *, follow: bool) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                base_url=base_url,
                headers=headers,
                timeout=timeout,
                limits=limits,
                transport=transport,
                verify=verify,
                follow_redirects=follow,
            )

        self._clients = (
            client(settings.nemo_base_url, platform_headers, follow=False),
            client(settings.nim_base_url, platform_headers, follow=False),
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
