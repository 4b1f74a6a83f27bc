"""Connections to one chat endpoint, spread over small httpx pools.

httpcore's connection pool walks every connection it holds each time a request starts or ends,
checking idle ones with system calls and, for the keep-alive limit, once per idle connection
over the whole list: a cost that grows with the square of the pool's size. At 32 connections
that was milliseconds of CPU per request, more than the evaluator's own work. Several pools of
a few connections each, every request taking the least busy, keep each walk short while the
endpoint still holds as many connections in total.
"""

import math
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

CONNECTIONS_PER_POOL = 8


@dataclass(eq=False)
class _Pool:
    client: httpx.AsyncClient
    in_flight: int = 0


class Pools:
    """`max_connections` keep-alive HTTP/1.1 connections to `base_url`, in pools of at most
    CONNECTIONS_PER_POOL."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        timeout: httpx.Timeout,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        count = math.ceil(max_connections / CONNECTIONS_PER_POOL)
        size = math.ceil(max_connections / count)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        # One TLS context for all: loading the CA bundle takes tens of milliseconds per client.
        tls = tls or httpx.create_ssl_context()
        self._pools = [
            _Pool(
                httpx.AsyncClient(
                    base_url=base_url,
                    headers=headers,
                    timeout=timeout,
                    limits=limits,
                    verify=tls,
                    transport=transport,
                )
            )
            for _ in range(count)
        ]

    @contextmanager
    def client(self) -> Iterator[httpx.AsyncClient]:
        """The least busy pool's client, counted as busy until the block ends."""
        pool = min(self._pools, key=lambda p: p.in_flight)
        pool.in_flight += 1
        try:
            yield pool.client
        finally:
            pool.in_flight -= 1

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.client.aclose()
