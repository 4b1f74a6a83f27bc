"""Test helpers: a tiny HTTP(S) server on 127.0.0.1 that records each request's headers, and a
throwaway CA with a server certificate for it.

The server answers every request with a fixed JSON body (by default what Elasticsearch 7.17 says
at `GET /`, with the `X-Elastic-Product` header elasticsearch-py's product check wants), so a
real client can be pointed at it to see what it sends.
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ES_INFO: dict[str, Any] = {
    "name": "recording",
    "cluster_name": "recording",
    "version": {"number": "7.17.25", "build_flavor": "default"},
    "tagline": "You Know, for Search",
}
ES_HEADERS = {"X-Elastic-Product": "Elasticsearch"}


@dataclass(frozen=True)
class Certificates:
    ca: Path
    """PEM of the CA: what a client is told to trust."""
    cert: Path
    """PEM of the server's certificate (for 127.0.0.1 and localhost), signed by the CA."""
    key: Path
    """PEM of the server's private key."""


def make_certificates(directory: Path) -> Certificates:
    """A fresh CA and a server certificate for 127.0.0.1/localhost (the local stack's own CA
    tooling)."""
    from flywheel_localstack.tls import issue, new_authority

    authority = new_authority("flywheel test CA")
    server = issue(authority, "127.0.0.1", server=True, client=False)
    paths = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths.ca.write_bytes(authority.certificate_pem)
    paths.cert.write_bytes(server.certificate_pem)
    paths.key.write_bytes(server.key_pem)
    return paths


@dataclass
class RecordingServer:
    url: str
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """(method, path, headers with lower-case names) of every request answered."""

    def authorizations(self) -> list[str | None]:
        return [headers.get("authorization") for _, _, headers in self.requests]


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client refusing the certificate is what some tests want: no traceback for it."""


@contextmanager
def recording_server(
    certificates: Certificates | None = None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Iterator[RecordingServer]:
    """A server on 127.0.0.1 (HTTPS with `certificates`), answering `body` (default ES_INFO,
    with ES_HEADERS) to every request, stopped on exit."""
    answer = json.dumps(ES_INFO if body is None else body).encode()
    extra = ES_HEADERS if headers is None else headers
    recorded: list[tuple[str, str, dict[str, str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            recorded.append(
                (self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a test's output is not the place for access logs."""

    server = _QuietServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if certificates is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates.cert, certificates.key)
        # The handshake happens in each request's thread, so a client refusing the certificate
        # cannot stall the server's accept loop.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield RecordingServer(f"{scheme}://127.0.0.1:{server.server_address[1]}", recorded)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
