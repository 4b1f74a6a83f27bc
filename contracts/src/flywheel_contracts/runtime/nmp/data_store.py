"""NeMo Data Store: its namespace API (D2) and the HF Hub-compatible subset under /v1/hf that
huggingface_hub would use (D3, D4, D9, file download), spoken directly with httpx so services
need no hub client and get the same typed errors and retries as every other NMP call."""

import base64
import json

import httpx

from .errors import NmpProtocolError, NmpRequestRejected
from .http import Call, HostCaller, is_duplicate_namespace, path_tail, read, segment
from .models import AlreadyExists, CommitInfo, Created, PreuploadResponse

_REVISION = "main"
# The hub sends the first 512 bytes so the server can sniff text vs binary for the upload mode.
_SAMPLE_BYTES = 512


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


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

    async def upload_file(self, name: str, path_in_repo: str, content: bytes) -> CommitInfo:
        """D4: preupload, then commit the file inline (base64 in an NDJSON commit body)."""
        preupload = Call(
            "POST",
            self._repo_api(name, "preupload"),
            json={
                "files": [
                    {
                        "path": path_in_repo,
                        "sample": _b64(content[:_SAMPLE_BYTES]),
                        "size": len(content),
                    }
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
        lines = [
            {"key": "header", "value": {"summary": f"Upload {path_in_repo}", "description": ""}},
            {
                "key": "file",
                "value": {"content": _b64(content), "path": path_in_repo, "encoding": "base64"},
            },
        ]
        commit = Call(
            "POST",
            self._repo_api(name, "commit"),
            content="".join(json.dumps(line) + "\n" for line in lines).encode(),
            headers={"Content-Type": "application/x-ndjson"},
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
