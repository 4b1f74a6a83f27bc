"""A transport wrapper that keeps every request, so a test can assert what went on the wire
whether the other end is a fake or a live NMP."""

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

import httpx


@dataclass(frozen=True)
class SentRequest:
    method: str
    url: httpx.URL
    headers: httpx.Headers
    content: bytes

    def json(self) -> object:
        return json.loads(self.content)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.content.decode()))

    def ndjson(self) -> list[object]:
        return [json.loads(line) for line in self.content.decode().splitlines() if line]


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.sent: list[SentRequest] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        self.sent.append(SentRequest(request.method, request.url, request.headers, content))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def since(self, mark: int) -> list[SentRequest]:
        """Requests sent after ``mark = len(transport.sent)`` was taken."""
        return self.sent[mark:]
