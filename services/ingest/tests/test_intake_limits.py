"""A real ingest process under hostile bodies and idle connections: a gigabyte body is refused
with 413 without the process holding it, a body trickling in is cut off with 408, and idle
connections do not starve the others."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from flywheel_ingest.testing import PrivateIngest, PrivateIngestOf

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
GIGABYTE = 1024 * MIB
RSS_GROWTH_BOUND = 64 * MIB
"""Well over the 16 MiB body limit the process may hold (plus a copy), far under a gigabyte."""
HEAD_S = 2.0
BODY_S = 2.0
IDLE_CONNECTIONS = 200


@pytest.fixture(scope="module")
def ingest(
    private_ingest_of: PrivateIngestOf, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateIngest]:
    with private_ingest_of(
        "ingest-limits",
        tmp_path_factory.mktemp("limits"),
        server__head_timeout_s=str(HEAD_S),
        intake__body_timeout_s=str(BODY_S),
    ) as ingest:
        yield ingest


def _gigabyte() -> Iterator[bytes]:
    """A gigabyte of NDJSON-ish bytes, one reused mebibyte at a time: never built whole."""
    chunk = (b'{"pad": "' + b"x" * (MIB - 12) + b'"}\n')[:MIB]
    for _ in range(GIGABYTE // MIB):
        yield chunk


class _PeakRss:
    """Samples the process's RSS in the background until stopped; `peak` is the highest seen."""

    def __init__(self, ingest: PrivateIngest) -> None:
        self._ingest = ingest
        self.peak = ingest.process.rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._ingest.process.rss_bytes())

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._ingest.process.rss_bytes())


def _post(ingest: PrivateIngest, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(timeout=60) as http:
        return http.post(f"{ingest.url}/v1/logs", content=_gigabyte(), headers=headers)


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-length": str(GIGABYTE)}],
    ids=["chunked", "declared-length"],
)
def test_a_gigabyte_body_is_refused_with_413_and_never_held_in_memory(
    ingest: PrivateIngest, headers: dict[str, str]
) -> None:
    before = ingest.process.rss_bytes()
    started = time.monotonic()
    with _PeakRss(ingest) as rss:
        response = _post(ingest, {"content-type": "application/x-ndjson", **headers})
    assert response.status_code == 413
    assert "exceeds" in response.json()["detail"]
    assert rss.peak - before < RSS_GROWTH_BOUND, f"RSS grew by {(rss.peak - before) / MIB:.0f} MiB"
    # Cut off, not read to the end: a gigabyte would take far longer on loopback.
    assert time.monotonic() - started < 30
    assert httpx.get(f"{ingest.url}/health/live", timeout=5).status_code == 200


def test_the_intake_still_accepts_after_refusing_gigabytes(ingest: PrivateIngest) -> None:
    response = httpx.post(f"{ingest.url}/v1/logs", content=b"{}\n", timeout=10)
    assert response.status_code == 202


def test_idle_connections_neither_starve_the_others_nor_stay_open(ingest: PrivateIngest) -> None:
    port = ingest.process.port
    idle = [
        socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(IDLE_CONNECTIONS)
    ]
    try:
        started = time.monotonic()
        response = httpx.get(f"{ingest.url}/health/live", timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
        # Past the head timeout the server has closed every one of them (a read sees the end).
        time.sleep(HEAD_S + 1)
        for connection in idle:
            connection.settimeout(5)
            assert connection.recv(1) == b""
    finally:
        for connection in idle:
            connection.close()


def test_a_body_trickling_in_is_cut_off_with_408_and_its_connection_closed(
    ingest: PrivateIngest,
) -> None:
    head = (
        "POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", ingest.process.port), timeout=5) as connection:
        connection.sendall(head.encode())
        started = time.monotonic()
        answer = b""
        # A byte every 0.2 s: the head came fast, the body never will.
        while time.monotonic() - started < BODY_S + 5:
            try:
                connection.sendall(b"x")
            except OSError:
                break  # closed by the server
            connection.settimeout(0.2)
            try:
                received = connection.recv(65536)
            except TimeoutError:
                continue
            if not received:
                break
            answer += received
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive within" in answer
    assert BODY_S - 0.5 < elapsed < BODY_S + 5
