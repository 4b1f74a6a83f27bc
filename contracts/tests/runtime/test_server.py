"""The HTTP server closes connections that hold it idle: one that sends no request head in
time, one that trickles it, one idle between requests; a prompt client is served."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from flywheel_contracts.runtime.server import (
    H11WithDeadline,
    HeadDeadline,
    protocol_class,
    server_config,
)
from flywheel_contracts.runtime.settings import ServiceSettings

pytestmark = pytest.mark.unit

HEAD_TIMEOUT_S = 0.3


class _Cycle:
    def __init__(self, response_complete: bool = False) -> None:
        self.response_complete = response_complete


class _Timers:
    """`call_later` that runs only when the test fires it."""

    def __init__(self) -> None:
        self.pending: list[Any] = []

    def call_later(self, delay: float, callback: Any) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(delay, callback, (), asyncio.new_event_loop())
        self.pending.append(handle)
        return handle

    def fire(self) -> None:
        handles, self.pending = self.pending, []
        for handle in handles:
            if not handle.cancelled():
                handle._run()


def _deadline(cycle: list[Any]) -> tuple[HeadDeadline, _Timers, list[str]]:
    timers, closed = _Timers(), []
    deadline = HeadDeadline(
        timers,  # type: ignore[arg-type]
        lambda: closed.append("closed"),
        lambda: cycle[0],
        HEAD_TIMEOUT_S,
    )
    return deadline, timers, closed


def test_a_connection_without_a_request_head_in_time_is_closed() -> None:
    deadline, timers, closed = _deadline([None])
    deadline.arm_if_waiting()
    timers.fire()
    assert closed == ["closed"]


def test_a_connection_whose_head_arrived_is_left_open() -> None:
    cycle: list[Any] = [None]
    deadline, timers, closed = _deadline(cycle)
    deadline.arm_if_waiting()
    cycle[0] = _Cycle()  # the head is complete: uvicorn made the request's cycle
    timers.fire()
    assert closed == []


def test_the_next_requests_head_is_timed_too() -> None:
    cycle: list[Any] = [_Cycle(response_complete=True)]
    deadline, timers, closed = _deadline(cycle)
    deadline.arm_if_waiting()  # its first bytes arrived
    timers.fire()
    assert closed == ["closed"]


def test_no_clock_runs_while_a_request_is_in_progress() -> None:
    deadline, timers, closed = _deadline([_Cycle(response_complete=False)])
    deadline.arm_if_waiting()  # a body arriving slowly: not the head timeout's business
    assert timers.pending == []
    assert closed == []


def test_a_lost_connection_stops_the_clock() -> None:
    deadline, timers, closed = _deadline([None])
    deadline.arm_if_waiting()
    deadline.cancel()
    timers.fire()
    assert closed == []


def test_the_server_uses_the_settings_timeouts() -> None:
    settings = ServiceSettings.model_validate(
        {"service_name": "test", "server": {"keep_alive_timeout_s": 7, "head_timeout_s": 2.5}}
    )
    config = server_config(FastAPI(), settings)
    assert config.timeout_keep_alive == 7
    assert getattr(config, "head_timeout_s") == 2.5  # noqa: B009 (set on uvicorn's Config)


# -- a real server on loopback ------------------------------------------------------------------


@pytest.fixture(params=[protocol_class, H11WithDeadline], ids=["default", "h11"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    settings = ServiceSettings.model_validate(
        {
            "service_name": "test",
            "http_port": port,
            "server": {"keep_alive_timeout_s": 1, "head_timeout_s": HEAD_TIMEOUT_S},
        }
    )
    running = uvicorn.Server(server_config(app, settings, request.param))
    task = asyncio.create_task(running.serve())
    for _ in range(500):  # uvicorn offers no event to await; it starts in milliseconds
        if running.started:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the server did not start")
    try:
        yield port
    finally:
        running.should_exit = True
        await task


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except TimeoutError:
        return False


async def test_an_idle_connection_is_closed_by_the_server(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    assert await _closed_within(reader, HEAD_TIMEOUT_S + 1)
    writer.close()


async def test_a_trickled_request_head_is_cut_off(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # and the rest never comes
    await writer.drain()
    assert await _closed_within(reader, HEAD_TIMEOUT_S + 1)
    writer.close()


async def test_a_prompt_request_is_served_and_kept_alive_until_the_keep_alive_timeout(
    server: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 200")
    assert await reader.readexactly(len(b'{"ok":true}')) == b'{"ok":true}'
    assert not await _closed_within(reader, HEAD_TIMEOUT_S * 2)  # the head timeout is over
    assert await _closed_within(reader, 2)  # the keep-alive timeout is not
    writer.close()
