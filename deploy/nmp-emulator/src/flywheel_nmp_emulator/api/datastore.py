"""Data Store (datastore host): its namespaces (form-encoded) and the Hugging Face Hub
compatible subset under /v1/hf that huggingface_hub's upload_file / create_repo / delete_repo
use, plus file download so jobs and tests can read what was uploaded."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, HTTPException, Request, Response
from pydantic import BaseModel

from flywheel_nmp_emulator.api.deps import FreshEmulator, json_body
from flywheel_nmp_emulator.draws import short_hash
from flywheel_nmp_emulator.ids import iso
from flywheel_nmp_emulator.jobs.files import blob_key, repo_key
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.blobs import InvalidKeyError, check_key
from flywheel_nmp_emulator.state.records import Namespace, Repo, RepoFile

router = APIRouter(tags=["data store"])


class RepoRequest(BaseModel):
    name: str
    organization: str
    type: str = "dataset"


def _hub_error(status: int, code: str, message: str) -> HTTPException:
    # huggingface_hub reads X-Error-Code to raise RepositoryNotFound / EntryNotFound.
    return HTTPException(status_code=status, detail=message, headers={"X-Error-Code": code})


def _repo(emu: Emulator, namespace: str, name: str) -> Repo:
    repo = emu.state.repos.get(repo_key(namespace, name))
    if repo is None:
        raise _hub_error(404, "RepositoryNotFound", f"dataset repo {namespace}/{name} not found")
    return repo


def _check_dataset(kind: str) -> None:
    if kind != "dataset":
        raise HTTPException(status_code=400, detail="only dataset repos are supported")


@router.post("/v1/datastore/namespaces", status_code=201)
async def create_namespace(namespace: Annotated[str, Form()], emu: FreshEmulator) -> dict[str, Any]:
    if namespace in emu.state.datastore_namespaces:
        raise HTTPException(status_code=409, detail=f"namespace {namespace} already exists")
    ns = Namespace(id=namespace, created_at=emu.clock())
    emu.state.datastore_namespaces[namespace] = ns
    emu.store.commit()
    return {"namespace": namespace, "created_at": iso(ns.created_at)}


@router.post("/v1/hf/api/repos/create")
async def create_repo(body: RepoRequest, request: Request, emu: FreshEmulator) -> dict[str, Any]:
    _check_dataset(body.type)
    key = repo_key(body.organization, body.name)
    if key in emu.state.repos:
        raise HTTPException(status_code=409, detail="You already created this dataset repo")
    emu.state.repos[key] = Repo(namespace=body.organization, name=body.name, created_at=emu.clock())
    emu.store.commit()
    return {"url": f"{request.base_url}v1/hf/datasets/{key}", "name": key}


@router.delete("/v1/hf/api/repos/delete")
async def delete_repo(body: RepoRequest, emu: FreshEmulator) -> dict[str, Any]:
    _check_dataset(body.type)
    _repo(emu, body.organization, body.name)
    del emu.state.repos[repo_key(body.organization, body.name)]
    emu.store.blobs.delete_prefix(blob_key(body.organization, body.name, ""))
    emu.store.commit()
    return {}


@router.get("/v1/hf/api/datasets/{namespace}/{name}")
@router.get("/v1/hf/api/datasets/{namespace}/{name}/revision/{revision}")
async def repo_info(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
    repo = _repo(emu, namespace, name)
    return {
        "id": repo_key(namespace, name),
        "sha": short_hash(repo.namespace, repo.name, repo.commits, size=20),
        "siblings": [{"rfilename": path, "size": f.size} for path, f in sorted(repo.files.items())],
        "createdAt": iso(repo.created_at),
    }


@router.post("/v1/hf/api/datasets/{namespace}/{name}/preupload/{revision}")
async def preupload(
    namespace: str, name: str, request: Request, emu: FreshEmulator
) -> dict[str, Any]:
    _repo(emu, namespace, name)
    body = await json_body(request)
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list):
        raise HTTPException(status_code=422, detail="body must be {'files': [...]}")
    # Everything goes inline ("regular"): the emulator has no LFS server.
    return {
        "files": [
            {"path": f.get("path"), "uploadMode": "regular", "shouldIgnore": False, "oid": None}
            for f in files
            if isinstance(f, dict)
        ]
    }


def _decode(value: dict[str, Any]) -> tuple[str, bytes]:
    path, content = value.get("path"), value.get("content", "")
    if not isinstance(path, str) or not isinstance(content, str):
        raise HTTPException(status_code=422, detail="a file operation needs path and content")
    try:
        check_key(path)
    except InvalidKeyError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    if value.get("encoding", "base64") == "base64":
        try:
            return path, base64.b64decode(content, validate=True)
        except binascii.Error as exc:
            raise HTTPException(status_code=422, detail=f"{path}: invalid base64") from exc
    return path, content.encode()


@router.post("/v1/hf/api/datasets/{namespace}/{name}/commit/{revision}")
async def commit(
    namespace: str, name: str, revision: str, request: Request, emu: FreshEmulator
) -> dict[str, Any]:
    repo = _repo(emu, namespace, name)
    writes: dict[str, bytes] = {}
    deletes: list[str] = []
    # NDJSON: a header line, then one line per operation. Validate everything before applying.
    for number, line in enumerate((await request.body()).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            op = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(status_code=422, detail=f"line {number}: {exc}") from exc
        key, value = op.get("key"), op.get("value") or {}
        if key == "file":
            path, data = _decode(value)
            writes[path] = data
        elif key == "deletedFile":
            deletes.append(str(value.get("path")))
        elif key == "lfsFile":
            raise HTTPException(status_code=400, detail="LFS uploads are not supported")
        elif key != "header":
            raise HTTPException(status_code=422, detail=f"line {number}: unknown key {key!r}")
    for path, data in writes.items():
        emu.store.blobs.put(blob_key(namespace, name, path), data)
        repo.files[path] = RepoFile(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    for path in deletes:
        if repo.files.pop(path, None) is not None:
            emu.store.blobs.delete_prefix(blob_key(namespace, name, path))
    repo.commits += 1
    emu.store.commit()
    oid = short_hash(namespace, name, repo.commits, sorted(writes), size=20)
    return {
        "commitUrl": f"{request.base_url}v1/hf/datasets/{namespace}/{name}/commit/{oid}",
        "commitOid": oid,
        "success": True,
        "pullRequestUrl": None,
    }


@router.get("/v1/hf/datasets/{namespace}/{name}/resolve/{revision}/{path:path}")
async def download(
    namespace: str, name: str, revision: str, path: str, emu: FreshEmulator
) -> Response:
    repo = _repo(emu, namespace, name)
    data = emu.store.blobs.get(blob_key(namespace, name, path)) if path in repo.files else None
    if data is None:
        raise _hub_error(404, "EntryNotFound", f"{path} not found in {namespace}/{name}")
    return Response(data, media_type="application/octet-stream")
