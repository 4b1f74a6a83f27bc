"""File bodies (uploaded dataset files, trained adapters): in memory, or in a data directory."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol


class InvalidKeyError(ValueError):
    """A key that would escape the store (absolute, '..', empty segments)."""


def check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidKeyError(f"invalid file path: {key!r}")
    return key


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, source: Path) -> None:
        """Take over the file `source` (it is moved, or read and removed) as `key`."""
        ...

    def get(self, key: str) -> bytes | None: ...
    def delete_prefix(self, prefix: str) -> None: ...


class MemoryBlobs:
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self._blobs[check_key(key)] = data

    def put_file(self, key: str, source: Path) -> None:
        self.put(key, source.read_bytes())
        source.unlink()

    def get(self, key: str) -> bytes | None:
        return self._blobs.get(key)

    def delete_prefix(self, prefix: str) -> None:
        for key in [k for k in self._blobs if k.startswith(prefix)]:
            del self._blobs[key]


class DirectoryBlobs:
    """One file per key under ``root``; writes are atomic so a crash never leaves half a file."""

    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*PurePosixPath(check_key(key)).parts)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)

    def put_file(self, key: str, source: Path) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(source, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with source.open("rb") as fh:  # another file system: copy, still atomically
                atomic_write(path, fh)
            source.unlink()

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, InvalidKeyError, IsADirectoryError):
            return None

    def delete_prefix(self, prefix: str) -> None:
        target = self._path(prefix.rstrip("/"))
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def atomic_write(path: Path, data: bytes | BinaryIO) -> None:
    """`data` (bytes, or a file to copy) at `path`, complete or not at all."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                shutil.copyfileobj(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
