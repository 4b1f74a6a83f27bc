"""The embeddings endpoint for semantic ICL: the NIM proxy by default, or a remote
OpenAI-compatible one (build.nvidia.com, say) with an API key and a CA bundle of its own.

The endpoint has an httpx client of its own: the key is in that client's headers only, so no
other NMP host (Data Store, Entity Store) ever receives it. On the NIM proxy, without a key or CA
bundle of its own, it uses the NMP platform's (`nmp.api_key`, `nmp.ca_bundle`).
"""

import asyncio
import ssl
from collections.abc import Sequence
from pathlib import Path

import httpx
from pydantic import SecretStr

from flywheel_contracts.runtime.nmp import NmpSettings
from flywheel_contracts.runtime.nmp.http import HostCaller, RetryPolicy, Sleep
from flywheel_contracts.runtime.nmp.nim import NimProxy, openai_base_url
from flywheel_contracts.runtime.secrets import bearer_headers, secret
from flywheel_datasets.config import DatasetsSettings


class EmbeddingsEndpoint:
    """`POST {base_url}/embeddings` (OpenAI format), retried as every NMP call is."""

    def __init__(
        self,
        base_url: str,
        nmp: NmpSettings,
        *,
        api_key: SecretStr | None = None,
        ca_bundle: Path | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        sent = bearer_headers(api_key, (headers or {}).items())
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else True
        )
        self._client = httpx.AsyncClient(
            base_url=openai_base_url(base_url),
            headers=sent,
            verify=verify,
            timeout=httpx.Timeout(nmp.request_timeout_s, connect=nmp.connect_timeout_s),
            transport=transport,
        )
        policy = RetryPolicy(nmp.retry_attempts, nmp.retry_backoff_s, nmp.retry_backoff_max_s)
        self._proxy = NimProxy(HostCaller(self._client, policy, sleep), prefix="")

    @classmethod
    def from_settings(
        cls, settings: DatasetsSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> "EmbeddingsEndpoint":
        base_url, build, nmp = settings.embedding_base_url, settings.build, settings.nmp
        api_key = secret(build.embedding_api_key, build.embedding_api_key_file)
        ca_bundle = build.embedding_ca_bundle
        if nmp.is_nim_proxy(base_url):
            # The NIM proxy (the default) wants the platform's key and trusts its CAs, unless
            # the embeddings settings name their own; no other host is ever sent the key.
            api_key = api_key if api_key is not None else nmp.platform_key()
            ca_bundle = ca_bundle if ca_bundle is not None else nmp.ca_bundle
        return cls(
            base_url,
            nmp,
            api_key=api_key,
            ca_bundle=ca_bundle,
            headers=build.embedding_headers,
            transport=transport,
        )

    async def embeddings(
        self, texts: Sequence[str], *, model: str, input_type: str = "query"
    ) -> list[list[float]]:
        """One vector per text, in input order."""
        return await self._proxy.embeddings(texts, model=model, input_type=input_type)

    async def aclose(self) -> None:
        await self._client.aclose()
