"""Reading what was uploaded to the Data Store, as the emulator's own jobs do."""

from __future__ import annotations

import re

from flywheel_nmp_emulator.state.store import StateStore

_FILES_URL = re.compile(r"^hf://datasets/([^/]+)/([^/]+)(?:/(.+))?$")


class DatasetFileError(LookupError):
    """A dataset or file that a job needs is not in the Data Store."""


def repo_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def blob_key(namespace: str, name: str, path: str) -> str:
    return f"datasets/{namespace}/{name}/{path}"


def parse_files_url(url: str) -> tuple[str, str, str | None]:
    """'hf://datasets/{ns}/{name}/eval_data.jsonl' -> (ns, name, 'eval_data.jsonl')."""
    match = _FILES_URL.match(url)
    if match is None:
        raise DatasetFileError(
            f"unsupported files_url {url!r} (expected hf://datasets/ns/name/...)"
        )
    return match.group(1), match.group(2), match.group(3)


def read_file(store: StateStore, namespace: str, name: str, path: str) -> bytes:
    repo = store.state.repos.get(repo_key(namespace, name))
    if repo is None:
        raise DatasetFileError(f"dataset repo {namespace}/{name} does not exist")
    if path not in repo.files:
        raise DatasetFileError(f"file {path} not found in dataset {namespace}/{name}")
    data = store.blobs.get(blob_key(namespace, name, path))
    if data is None:
        raise DatasetFileError(f"file {path} of dataset {namespace}/{name} is missing from storage")
    return data


def find_file(
    store: StateStore, namespace: str, name: str, preferred: str, folder: str
) -> bytes | None:
    """The preferred file, else the first .jsonl under the folder, else None."""
    repo = store.state.repos.get(repo_key(namespace, name))
    if repo is None:
        return None
    in_folder = (p for p in repo.files if p.startswith(folder + "/") and p.endswith(".jsonl"))
    candidates = [preferred, *sorted(in_folder)]
    for path in candidates:
        if path in repo.files:
            return read_file(store, namespace, name, path)
    return None
