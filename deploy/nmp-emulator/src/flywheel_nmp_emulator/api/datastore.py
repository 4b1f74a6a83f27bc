"""Data Store (datastore host): its namespaces (form-encoded) and the Hugging Face Hub
compatible API under /v1/hf, as huggingface_hub drives it with `endpoint=<datastore>/v1/hf`:
create_repo / delete_repo, repo_info, upload_file and delete_file (preupload + NDJSON commit),
hf_hub_download (HEAD then GET on resolve), list_repo_files / list_repo_tree (tree) and
get_paths_info (paths-info).

Answers have real NMP's shape where huggingface_hub looks at it: a commit answers with an empty
`commitUrl` (what NMP returns; huggingface_hub 0.x turns a URL that is not under
huggingface.co into an error after the commit landed), errors carry `X-Error-Code`
(RepoNotFound, RevisionNotFound, EntryNotFound) so the hub raises its typed errors, and a file's
HEAD carries `X-Repo-Commit`, `ETag` and `Content-Length`, which hf_hub_download requires. The
repo has one revision, `main`, whose commit id is also accepted; there is no history and no LFS.

A commit carries its files inline, base64 in NDJSON, and a training file can be hundreds of
megabytes: the body is read as a stream, long string values are spooled to disk as they arrive
and base64 contents are decoded from there into staged files, so memory stays flat whatever the
size. Every operation is checked before any file lands in the repo.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import tempfile
import uuid
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import orjson
from fastapi import APIRouter, Form, HTTPException, Request, Response
from pydantic import BaseModel

from flywheel_nmp_emulator.api.deps import FreshEmulator, json_body, json_response
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
    # huggingface_hub reads X-Error-Code (and X-Error-Message) to raise RepositoryNotFoundError,
    # RevisionNotFoundError or EntryNotFoundError; the codes are the Hub's own spellings.
    headers = {"X-Error-Code": code, "X-Error-Message": message}
    return HTTPException(status_code=status, detail=message, headers=headers)


def _repo(emu: Emulator, namespace: str, name: str) -> Repo:
    repo = emu.state.repos.get(repo_key(namespace, name))
    if repo is None:
        raise _hub_error(404, "RepoNotFound", f"dataset repo {namespace}/{name} not found")
    return repo


def _check_dataset(kind: str) -> None:
    if kind != "dataset":
        raise HTTPException(status_code=400, detail="only dataset repos are supported")


def _commit_id(repo: Repo) -> str:
    """The repo's current commit: 40 hex digits like a git sha, new with every commit and every
    re-creation of the repo."""
    return short_hash(repo.namespace, repo.name, repo.created_at, repo.commits, size=20)


def _at_revision(emu: Emulator, namespace: str, name: str, revision: str) -> Repo:
    """The repo, if `revision` names its only revision: the branch `main` or its commit id."""
    repo = _repo(emu, namespace, name)
    if revision not in ("main", _commit_id(repo)):
        raise _hub_error(404, "RevisionNotFound", f"invalid rev id: {revision}")
    return repo


def _hub_time(ts: float) -> str:
    """The Hub's timestamp format, '2024-05-01T12:00:00.000Z' (its clients parse only this)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _folders(paths: Iterable[str]) -> set[str]:
    """Every folder that holds one of `paths`, at any depth."""
    folders: set[str] = set()
    for path in paths:
        parts = path.split("/")
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    return folders


def _entry(repo: Repo, path: str, folders: set[str]) -> dict[str, Any] | None:
    """A tree / paths-info entry: a file (oid = its sha256, which is also its ETag) or a
    folder; None if the repo has neither at `path`."""
    file = repo.files.get(path)
    if file is not None:
        return {"type": "file", "oid": file.sha256, "size": file.size, "path": path}
    if path in folders:
        oid = short_hash(repo.namespace, repo.name, repo.commits, path, size=20)
        return {"type": "directory", "oid": oid, "size": 0, "path": path}
    return None


@router.post("/v1/datastore/namespaces", status_code=201)
async def create_namespace(namespace: Annotated[str, Form()], emu: FreshEmulator) -> dict[str, Any]:
    if namespace in emu.state.datastore_namespaces:
        raise HTTPException(status_code=409, detail=f"namespace {namespace} already exists")
    ns = Namespace(id=namespace, created_at=emu.clock())
    emu.state.datastore_namespaces[namespace] = ns
    emu.store.commit()
    return {"namespace": namespace, "created_at": iso(ns.created_at)}


@router.post("/v1/hf/api/repos/create")
async def create_repo(body: RepoRequest, request: Request, emu: FreshEmulator) -> Response:
    _check_dataset(body.type)
    key = repo_key(body.organization, body.name)
    url = f"{request.base_url}v1/hf/datasets/{key}"
    if key in emu.state.repos:
        # create_repo(exist_ok=True) reads the url off the 409, as the Hub sends it.
        message = "You already created this dataset repo"
        return json_response({"error": message, "detail": message, "url": url}, 409)
    emu.state.repos[key] = Repo(namespace=body.organization, name=body.name, created_at=emu.clock())
    emu.store.commit()
    return json_response({"url": url, "name": key})


@router.delete("/v1/hf/api/repos/delete")
async def delete_repo(body: RepoRequest, emu: FreshEmulator) -> dict[str, Any]:
    _check_dataset(body.type)
    _repo(emu, body.organization, body.name)
    del emu.state.repos[repo_key(body.organization, body.name)]
    emu.store.blobs.delete_prefix(blob_key(body.organization, body.name, ""))
    emu.store.commit()
    return {}


@router.get("/v1/hf/api/datasets/{namespace}/{name}")
async def repo_info(namespace: str, name: str, emu: FreshEmulator) -> dict[str, Any]:
    return _info(_repo(emu, namespace, name))


@router.get("/v1/hf/api/datasets/{namespace}/{name}/revision/{revision}")
async def repo_info_at(
    namespace: str, name: str, revision: str, emu: FreshEmulator
) -> dict[str, Any]:
    return _info(_at_revision(emu, namespace, name, revision))


def _info(repo: Repo) -> dict[str, Any]:
    return {
        "_id": short_hash(repo.namespace, repo.name, repo.created_at, size=12),
        "id": repo_key(repo.namespace, repo.name),
        "author": repo.namespace,
        "sha": _commit_id(repo),
        "private": False,
        "disabled": False,
        "gated": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": [
            {"rfilename": path, "size": f.size, "blobId": f.sha256}
            for path, f in sorted(repo.files.items())
        ],
        "createdAt": _hub_time(repo.created_at),
    }


@router.get("/v1/hf/api/datasets/{namespace}/{name}/tree/{revision}")
@router.get("/v1/hf/api/datasets/{namespace}/{name}/tree/{revision}/{path:path}")
async def tree(
    namespace: str,
    name: str,
    revision: str,
    emu: FreshEmulator,
    path: str = "",
    recursive: bool = False,
) -> Response:
    """list_repo_tree: the entries under `path` (all of them, folders included, if
    `recursive`), in one page (no `Link: next`)."""
    repo = _at_revision(emu, namespace, name, revision)
    path = path.strip("/")
    folders = _folders(repo.files)
    if path and path not in folders:
        # A file is not a folder: the Hub answers 404 for its tree too.
        raise _hub_error(404, "EntryNotFound", f"{path} is not a folder of {namespace}/{name}")
    prefix = f"{path}/" if path else ""
    below = sorted(p for p in (*repo.files, *folders) if p.startswith(prefix))
    if not recursive:
        below = [p for p in below if "/" not in p[len(prefix) :]]
    entries = [_entry(repo, p, folders) for p in below]
    return json_response([e for e in entries if e is not None])


@router.post("/v1/hf/api/datasets/{namespace}/{name}/paths-info/{revision}")
async def paths_info(
    namespace: str,
    name: str,
    revision: str,
    paths: Annotated[list[str], Form()],
    emu: FreshEmulator,
) -> Response:
    """get_paths_info: the entries of those `paths` that exist (the others are left out)."""
    repo = _at_revision(emu, namespace, name, revision)
    folders = _folders(repo.files)
    entries = [_entry(repo, p.strip("/"), folders) for p in dict.fromkeys(paths)]
    return json_response([e for e in entries if e is not None])


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


# A string value longer than this goes to a spool file instead of memory.
_INLINE_BYTES = 1 << 20
# Spooled base64 is decoded this much at a time (a multiple of 4, so pieces decode alone).
_DECODE_BYTES = 4 << 20


class _Spools:
    """The long string values of a commit, each in a file of `directory`, named in its line by
    a placeholder no client sends by accident."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._token = uuid.uuid4().hex
        self.files: dict[str, Path] = {}
        self.escaped: set[str] = set()  # spooled strings holding JSON escapes

    def start(self) -> tuple[str, BinaryIO]:
        placeholder = f"spool-{self._token}-{len(self.files)}"
        path = self._directory / placeholder
        self.files[placeholder] = path
        return placeholder, path.open("wb")

    def text(self, placeholder: str) -> str:
        """A spooled string, decoded whole (for the rare value that is not plain base64)."""
        return str(orjson.loads(b'"' + self.files[placeholder].read_bytes() + b'"'))


class _NdjsonReader:
    """Splits a streamed NDJSON body into parsed lines, spooling long strings (`_Spools`).

    Only the bytes inside JSON strings can be long, and base64 has neither quotes nor
    backslashes, so each piece is scanned with a few `find`s rather than byte by byte."""

    def __init__(self, spools: _Spools) -> None:
        self._spools = spools
        self._line = bytearray()  # the line so far, long strings replaced by placeholders
        self._string: bytearray | None = None  # the open string's bytes, while short
        self._spool: BinaryIO | None = None  # where the open string goes, once long
        self._placeholder = ""
        self._escaped = False
        self.number = 0

    def feed(self, piece: bytes) -> Iterator[Any]:
        at = 0
        while at < len(piece):
            if self._string is None and self._spool is None:
                at = yield from self._outside(piece, at)
            else:
                at = self._inside(piece, at)

    def end(self) -> Iterator[Any]:
        if self._string is not None or self._spool is not None:
            raise HTTPException(status_code=422, detail=f"line {self.number + 1}: unterminated")
        yield from self._complete()

    def _outside(self, piece: bytes, at: int) -> Generator[Any, None, int]:
        quote, newline = piece.find(b'"', at), piece.find(b"\n", at)
        if newline != -1 and (quote == -1 or newline < quote):
            self._line += piece[at:newline]
            yield from self._complete()
            return newline + 1
        if quote == -1:
            self._line += piece[at:]
            return len(piece)
        self._line += piece[at:quote]
        self._string = bytearray()
        return quote + 1

    def _inside(self, piece: bytes, at: int) -> int:
        end, quote = at, piece.find(b'"', at)
        while True:
            if self._escaped:  # the byte after a backslash, whatever it is
                if end == len(piece):
                    break
                self._escaped, end = False, end + 1
                if quote != -1 and quote < end:
                    quote = piece.find(b'"', end)
                continue
            backslash = piece.find(b"\\", end, len(piece) if quote == -1 else quote)
            if backslash != -1:
                self._escaped, end = True, backslash + 1
            elif quote == -1:
                end = len(piece)
                break
            else:
                self._keep(piece[at:quote])
                self._close()
                return quote + 1
        self._keep(piece[at:end])
        return end

    def _keep(self, data: bytes) -> None:
        if self._spool is None:
            assert self._string is not None
            self._string += data
            if len(self._string) <= _INLINE_BYTES:
                return
            data, self._string = bytes(self._string), None
            self._placeholder, self._spool = self._spools.start()
            self._line += b'"' + self._placeholder.encode() + b'"'
        if b"\\" in data:
            self._spools.escaped.add(self._placeholder)
        self._spool.write(data)

    def _close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        else:
            assert self._string is not None
            self._line += b'"' + self._string + b'"'
            self._string = None

    def _complete(self) -> Iterator[Any]:
        self.number += 1
        line, self._line = bytes(self._line), bytearray()
        if not line.strip():
            return
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(status_code=422, detail=f"line {self.number}: {exc}") from exc


@dataclass(frozen=True)
class _Staged:
    """A file of the commit, decoded into `path`."""

    path: Path
    size: int
    sha256: str


def _stage(value: dict[str, Any], spools: _Spools, directory: Path) -> tuple[str, _Staged]:
    path, content = value.get("path"), value.get("content", "")
    if not isinstance(path, str) or not isinstance(content, str):
        raise HTTPException(status_code=422, detail="a file operation needs path and content")
    try:
        check_key(path)
    except InvalidKeyError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    base64_encoded = value.get("encoding", "base64") == "base64"
    spooled = spools.files.get(content)
    if spooled is not None and (not base64_encoded or content in spools.escaped):
        content, spooled = spools.text(content), None
    target = directory / f"file-{uuid.uuid4().hex}"
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        for piece in _pieces(content, spooled, base64_encoded, path):
            out.write(piece)
            digest.update(piece)
            size += len(piece)
    return path, _Staged(target, size, digest.hexdigest())


def _pieces(content: str, spooled: Path | None, base64_encoded: bool, path: str) -> Iterator[bytes]:
    if not base64_encoded:
        yield content.encode()
        return
    try:
        if spooled is None:
            yield base64.b64decode(content, validate=True)
            return
        with spooled.open("rb") as encoded:
            while chunk := encoded.read(_DECODE_BYTES):
                yield base64.b64decode(chunk, validate=True)
    except binascii.Error as exc:
        raise HTTPException(status_code=422, detail=f"{path}: invalid base64") from exc


async def _read_commit(request: Request, directory: Path) -> tuple[dict[str, _Staged], list[str]]:
    """The commit's files, decoded and staged under `directory`, and the paths it deletes
    (a folder's with a trailing "/")."""
    spools = _Spools(directory)
    reader = _NdjsonReader(spools)
    writes: dict[str, _Staged] = {}
    deletes: list[str] = []

    async def apply(op: Any) -> None:
        if not isinstance(op, dict):
            raise HTTPException(status_code=422, detail=f"line {reader.number}: not an object")
        key, value = op.get("key"), op.get("value") or {}
        if key == "file":
            # Decoding hundreds of megabytes must not stall the emulator's other requests.
            path, staged = await asyncio.to_thread(_stage, value, spools, directory)
            writes[path] = staged
        elif key in ("deletedFile", "deletedFolder"):
            gone = value.get("path")
            if not isinstance(gone, str) or not gone.strip("/"):
                raise HTTPException(status_code=422, detail=f"line {reader.number}: no path")
            # A folder is kept as "its/path/", so it matches every file below it.
            deletes.append(gone.strip("/") + ("/" if key == "deletedFolder" else ""))
        elif key == "lfsFile":
            raise HTTPException(status_code=400, detail="LFS uploads are not supported")
        elif key != "header":
            raise HTTPException(
                status_code=422, detail=f"line {reader.number}: unknown key {key!r}"
            )

    async for piece in request.stream():
        for op in reader.feed(piece):
            await apply(op)
    for op in reader.end():
        await apply(op)
    return writes, deletes


def _deleted(repo: Repo, written: Iterable[str], deletes: list[str]) -> set[str]:
    """The files the deletes remove; 404 EntryNotFound (as the Hub) if one matches nothing."""
    present = set(repo.files) | set(written)
    removed: set[str] = set()
    for delete in deletes:
        matched = (
            {p for p in present if p.startswith(delete)}
            if delete.endswith("/")
            else ({delete} & present)
        )
        if not matched:
            what = "folder" if delete.endswith("/") else "file"
            raise _hub_error(
                404, "EntryNotFound", f"A {what} with this name doesn't exist: {delete}"
            )
        removed |= matched
    return removed


@router.post("/v1/hf/api/datasets/{namespace}/{name}/commit/{revision}")
async def commit(
    namespace: str, name: str, revision: str, request: Request, emu: FreshEmulator
) -> dict[str, Any]:
    """Applies the commit, then answers as NMP does: `commitUrl` empty, `commitOid` the new
    commit id (also the repo's `sha` and its files' `X-Repo-Commit` from now on)."""
    repo = _at_revision(emu, namespace, name, revision)
    with tempfile.TemporaryDirectory(prefix="nmp-commit-") as work:
        writes, deletes = await _read_commit(request, Path(work))
        removed = _deleted(repo, writes, deletes)
        for path, staged in writes.items():
            emu.store.blobs.put_file(blob_key(namespace, name, path), staged.path)
            repo.files[path] = RepoFile(size=staged.size, sha256=staged.sha256)
    for path in removed:
        del repo.files[path]
        # The blob store deletes by prefix: leave the blob if another file's name extends this
        # one's (a later upload of the path overwrites it; deleting the repo removes it).
        if not any(other.startswith(path) for other in repo.files):
            emu.store.blobs.delete_prefix(blob_key(namespace, name, path))
    repo.commits += 1
    emu.store.commit()
    return {
        "commitUrl": "",
        "commitOid": _commit_id(repo),
        "success": True,
        "pullRequestUrl": None,
    }


def _file_headers(repo: Repo, path: str) -> dict[str, str]:
    """What hf_hub_download reads off a file's HEAD (and GET): the commit it is at, its ETag
    (the cache's blob name) and its size."""
    file = repo.files[path]
    return {
        "X-Repo-Commit": _commit_id(repo),
        "ETag": f'"{file.sha256}"',
        "Content-Length": str(file.size),
    }


def _resolve(emu: Emulator, namespace: str, name: str, revision: str, path: str) -> Repo:
    repo = _at_revision(emu, namespace, name, revision)
    if path not in repo.files:
        raise _hub_error(404, "EntryNotFound", f"{path} not found in {namespace}/{name}")
    return repo


@router.head("/v1/hf/datasets/{namespace}/{name}/resolve/{revision}/{path:path}")
async def file_metadata(
    namespace: str, name: str, revision: str, path: str, emu: FreshEmulator
) -> Response:
    """hf_hub_download's and file_exists' metadata call; a 404 names the missing thing."""
    repo = _resolve(emu, namespace, name, revision, path)
    return Response(
        status_code=200, headers=_file_headers(repo, path), media_type="application/octet-stream"
    )


@router.get("/v1/hf/datasets/{namespace}/{name}/resolve/{revision}/{path:path}")
async def download(
    namespace: str, name: str, revision: str, path: str, emu: FreshEmulator
) -> Response:
    repo = _resolve(emu, namespace, name, revision, path)
    data = emu.store.blobs.get(blob_key(namespace, name, path))
    if data is None:
        raise _hub_error(404, "EntryNotFound", f"{path} not found in {namespace}/{name}")
    return Response(data, headers=_file_headers(repo, path), media_type="application/octet-stream")
