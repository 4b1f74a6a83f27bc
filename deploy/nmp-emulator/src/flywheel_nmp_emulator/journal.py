"""A journal of the JSON bodies clients send to NMP routes, so a test can check every request a
whole run made against the official SDK's parameter types. Off unless ``record_requests`` is
set; bounded, and it keeps only a few requests per path on the hot chat and embedding paths."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_MUTATING = frozenset({"POST", "PUT", "PATCH"})
# Data Store commits are NDJSON of base64 files (huggingface_hub is their oracle); the admin
# API is the emulator's own.
_SKIPPED_PREFIXES = ("/v1/hf/", "/emulator/")
_MAX_BODY_BYTES = 1 << 20
_MAX_ENTRIES = 5000
_PER_HOT_PATH = 50
_HOT_PATHS = frozenset({"/v1/chat/completions", "/v1/embeddings"})


class RequestJournal:
    def __init__(self) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=_MAX_ENTRIES)
        self._hot = Counter[str]()

    def wants(self, method: str, path: str) -> bool:
        if method not in _MUTATING or path.startswith(_SKIPPED_PREFIXES):
            return False
        return path not in _HOT_PATHS or self._hot[path] < _PER_HOT_PATH

    def add(self, method: str, path: str, raw: bytes) -> None:
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return  # not JSON: form posts and the like are not the SDK's to judge
        if path in _HOT_PATHS:
            self._hot[path] += 1
        self.entries.append({"method": method, "path": path, "body": body})


class JournalMiddleware:
    def __init__(self, app: ASGIApp, journal: RequestJournal) -> None:
        self.app = app
        self.journal = journal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.journal.wants(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if len(body) <= _MAX_BODY_BYTES:
            self.journal.add(scope["method"], scope["path"], body)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
