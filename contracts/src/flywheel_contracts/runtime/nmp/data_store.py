"""NeMo Data Store: its namespace API (D2) and the HF Hub-compatible subset under /v1/hf that
huggingface_hub would use (D3, D4, D9, file download), spoken directly with httpx so services
need no hub client and get the same typed errors and retries as every other NMP call.

A file is committed inline, base64 in the NDJSON commit body, exactly as the hub sends it; the
body is streamed from the source (a file on disk is never read whole), so a dataset of hundreds
of megabytes costs a few megabytes of memory."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import httpx

from .errors import NmpProtocolError, NmpRequestRejected
from .http import Call, HostCaller, is_duplicate_namespace, path_tail, read, segment
from .models import AlreadyExists, CommitInfo, Created, PreuploadResponse

_REVISION = "main"
# The hub sends the first 512 bytes so the server can sniff text vs binary for the upload mode.
_SAMPLE_BYTES = 512
# Read and encoded a piece at a time; a multiple of 3, so the pieces' base64 concatenates.
_CHUNK_BYTES = 3 * 2**20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Source:
    """What is uploaded: bytes in memory or a file on disk, read in pieces."""

    def __init__(self, content: bytes | Path) -> None:
        self._content = content
        if isinstance(content, Path):
            with content.open("rb") as file:
                self.sample = file.read(_SAMPLE_BYTES)
            self.size = content.stat().st_size
        else:
            self.sample = content[:_SAMPLE_BYTES]
            self.size = len(content)

    async def base64_pieces(self) -> AsyncIterator[bytes]:
        if isinstance(self._content, bytes):
            for start in range(0, self.size, _CHUNK_BYTES):
                yield base64.b64encode(self._content[start : start + _CHUNK_BYTES])
            return
        with self._content.open("rb") as file:
            while piece := await asyncio.to_thread(_read_encoded, file):
                yield piece


def _read_encoded(file: BinaryIO) -> bytes:
    return base64.b64encode(file.read(_CHUNK_BYTES))


class DataStore:
    def __init__(
        self, datastore: HostCaller, namespace: str, transfer_timeout: httpx.Timeout
    ) -> None:
        self._http = datastore
        self._ns = namespace
        self._transfer_timeout = transfer_timeout

    def _repo_body(self, name: str) -> dict[str, str]:
        return {"name": name, "organization": self._ns, "type": "dataset"}

    def _repo_api(self, name: str, action: str) -> str:
        return f"/v1/hf/api/datasets/{segment(self._ns)}/{segment(name)}/{action}/{_REVISION}"

    async def create_namespace(self) -> Created | AlreadyExists:
        """D2: POST /v1/datastore/namespaces, form-encoded namespace=<ns>."""
        call = Call("POST", "/v1/datastore/namespaces", data={"namespace": self._ns})
        return await self._http.create(call, is_duplicate_namespace)

    async def create_repo(self, name: str) -> Created | AlreadyExists:
        """D3: POST /v1/hf/api/repos/create for dataset repo {ns}/{name}."""
        call = Call("POST", "/v1/hf/api/repos/create", json=self._repo_body(name))
        return await self._http.create(call)

    async def upload_file(self, name: str, path_in_repo: str, content: bytes | Path) -> CommitInfo:
        """D4: preupload, then commit the file inline (base64 in an NDJSON commit body).

        `content` is the file's bytes or a file on disk, which is streamed."""
        source = _Source(content)
        preupload = Call(
            "POST",
            self._repo_api(name, "preupload"),
            json={
                "files": [
                    {"path": path_in_repo, "sample": _b64(source.sample), "size": source.size}
                ]
            },
        )
        modes = read(await self._http.send(preupload), PreuploadResponse)
        verdict = next((f for f in modes.files if f.path == path_in_repo), None)
        if verdict is None:
            raise NmpProtocolError(f"preupload of {name}/{path_in_repo} did not mention the file")
        if verdict.should_ignore:
            raise NmpRequestRejected(f"the Data Store ignores {name}/{path_in_repo}")
        if verdict.upload_mode != "regular":
            # LFS needs the git-lfs batch protocol; Flywheel's JSONL files are sent inline.
            raise NmpProtocolError(
                f"the Data Store wants {verdict.upload_mode!r} upload for {name}/{path_in_repo};"
                " only regular uploads are supported"
            )
        body = _CommitBody(path_in_repo, source)
        commit = Call(
            "POST",
            self._repo_api(name, "commit"),
            stream=body.pieces,
            headers={"Content-Type": "application/x-ndjson", "Content-Length": str(body.length)},
            timeout=self._transfer_timeout,
        )
        return read(await self._http.send(commit), CommitInfo)

    async def download_file(self, name: str, path_in_repo: str) -> bytes:
        """GET /v1/hf/datasets/{ns}/{name}/resolve/main/{path}: the file's bytes."""
        repo = f"/v1/hf/datasets/{segment(self._ns)}/{segment(name)}"
        url = f"{repo}/resolve/{_REVISION}/{path_tail(path_in_repo)}"
        response = await self._http.send(Call("GET", url, timeout=self._transfer_timeout))
        return response.content

    async def delete_repo(self, name: str) -> None:
        """D9: DELETE /v1/hf/api/repos/delete with the repo in a JSON body."""
        await self._http.send(Call("DELETE", "/v1/hf/api/repos/delete", json=self._repo_body(name)))


class _CommitBody:
    """The NDJSON commit: a header line, then the file line with the content as base64, which
    `json.dumps` would write as `{"key": "file", "value": {"content": "...", "path": ...}}`.
    Produced piece by piece, as often as the call is attempted; its length is known upfront."""

    def __init__(self, path_in_repo: str, source: _Source) -> None:
        header = {
            "key": "header",
            "value": {"summary": f"Upload {path_in_repo}", "description": ""},
        }
        self._head = (json.dumps(header) + "\n" + '{"key": "file", "value": {"content": "').encode()
        self._tail = (f'", "path": {json.dumps(path_in_repo)}, "encoding": "base64"}}}}\n').encode()
        self._source = source
        encoded = 4 * -(-source.size // 3)
        self.length = len(self._head) + encoded + len(self._tail)

    async def pieces(self) -> AsyncIterator[bytes]:
        yield self._head
        async for piece in self._source.base64_pieces():
            yield piece
        yield self._tail
