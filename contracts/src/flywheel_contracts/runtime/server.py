"""Every service's HTTP server: uvicorn, with the timeouts a port facing the network needs.

Under uvicorn's defaults a connection that never sends a complete request head is kept open
forever (uvicorn times out idle connections only between requests); enough of those exhaust the
process's file descriptors. The services serve with two bounds (`ServerSettings`): the time a
connection has to send a request's head, and the keep-alive time between requests.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from flywheel_contracts.runtime.settings import ServiceSettings

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover (httptools is optional; uvicorn then uses h11)
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class HeadDeadline:
    """Closes a connection that has not sent a request's head within `timeout_s` of being
    opened, or of starting to send its next request. `current_cycle` returns the connection's
    request in progress (uvicorn's cycle, made once a head is complete; None before the
    first)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        close: Callable[[], None],
        current_cycle: Callable[[], Any],
        timeout_s: float,
    ) -> None:
        self._loop = loop
        self._close = close
        self._current_cycle = current_cycle
        self._timeout_s = timeout_s
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at: Any = None

    def arm_if_waiting(self) -> None:
        """Start the clock unless it runs, when no request is in progress (a head is due)."""
        cycle = self._current_cycle()
        if self._timer is None and (cycle is None or cycle.response_complete):
            self._armed_at = cycle
            self._timer = self._loop.call_later(self._timeout_s, self._expire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._current_cycle() is self._armed_at:  # no new head since the clock started
            self._close()


class _DeadlineMixin:
    """The head deadline, for either of uvicorn's HTTP protocols (put before it in the bases)."""

    head_deadline: HeadDeadline

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self.head_deadline = _deadline_of(self, transport)
        self.head_deadline.arm_if_waiting()

    def data_received(self, data: bytes) -> None:
        self.head_deadline.arm_if_waiting()
        super().data_received(data)  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_deadline.cancel()
        super().connection_lost(exc)  # type: ignore[misc]


class H11WithDeadline(_DeadlineMixin, H11Protocol):  # type: ignore[misc]
    pass


def _deadline_of(protocol: Any, transport: asyncio.Transport) -> HeadDeadline:
    return HeadDeadline(
        protocol.loop,
        transport.close,
        lambda: protocol.cycle,
        getattr(protocol.config, "head_timeout_s", DEFAULT_HEAD_TIMEOUT_S),
    )


DEFAULT_HEAD_TIMEOUT_S = 10.0

protocol_class: type[asyncio.Protocol] = H11WithDeadline
"""The HTTP protocol served: httptools when installed (uvicorn's own choice), else h11."""

if HttpToolsProtocol is not None:

    class _HttpToolsWithDeadline(_DeadlineMixin, HttpToolsProtocol):  # type: ignore[misc]
        pass

    protocol_class = _HttpToolsWithDeadline


class _Config(uvicorn.Config):
    """uvicorn's configuration, carrying the head timeout to the protocol."""

    head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S


def server_config(
    app: FastAPI, settings: ServiceSettings, protocol: type[asyncio.Protocol] | None = None
) -> uvicorn.Config:
    """The server of `app`, with the connection timeouts of `settings.server` (`protocol`:
    `protocol_class` unless a test picks h11's)."""
    config = _Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        http=protocol or protocol_class,
        lifespan="on",
        log_config=None,  # keep the structlog handler configured by `configure_logging`
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s) + 1,
        timeout_keep_alive=settings.server.keep_alive_timeout_s,
    )
    config.head_timeout_s = settings.server.head_timeout_s
    return config
