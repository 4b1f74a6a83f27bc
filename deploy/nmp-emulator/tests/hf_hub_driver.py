"""Drives the emulator's Data Store with huggingface_hub, as users of real NMP do
(`HfApi(endpoint=f"{datastore}/v1/hf", token=...)`), and prints a JSON summary on stdout.

Run by test_hf_hub.py with the python of a venv holding one huggingface_hub version; it imports
nothing of this repository. Every step's outcome goes into the summary, so a failing step shows
up as its exception's type and message instead of stopping the run.

    python hf_hub_driver.py ENDPOINT scenario REPO_ID
    python hf_hub_driver.py ENDPOINT upload REPO_ID PATH_IN_REPO LOCAL_FILE  (repo made if new)
    python hf_hub_driver.py ENDPOINT download REPO_ID PATH_IN_REPO
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import sys
import tempfile
from collections.abc import Callable
from typing import Any

# Imported by name: the repo's own environment has no huggingface_hub (nor its types).
huggingface_hub: Any = importlib.import_module("huggingface_hub")

TOKEN = "flywheel-test-token"  # NMP's Data Store takes any token; it keeps the hub off ~/.cache
TRAIN = "data/train.jsonl"
EVAL = "eval.jsonl"


def _digest(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


class _Steps:
    def __init__(self) -> None:
        self.summary: dict[str, Any] = {"version": huggingface_hub.__version__, "errors": {}}

    def run(self, name: str, step: Callable[[], Any]) -> Any:
        try:
            value = step()
        except Exception as exc:  # every failure is reported, not raised
            self.summary["errors"][name] = f"{type(exc).__name__}: {exc}"
            return None
        self.summary[name] = value
        return value


def _download(api: Any, repo_id: str, path: str, cache: str) -> dict[str, Any]:
    local = api.hf_hub_download(repo_id, path, repo_type="dataset", cache_dir=cache)
    with open(local, "rb") as file:
        return _digest(file.read())


def scenario(api: Any, repo_id: str) -> dict[str, Any]:
    train = b"".join(
        json.dumps({"i": i, "text": 'r\u00e9sum\u00e9 \\ " /' * (i % 7)}).encode() + b"\n"
        for i in range(2000)
    )
    evaluation = bytes(range(256)) * 5  # not text: every byte value survives the round trip
    steps = _Steps()
    s = steps.summary
    s["uploaded"] = {TRAIN: _digest(train), EVAL: _digest(evaluation)}
    steps.run("created", lambda: str(api.create_repo(repo_id, repo_type="dataset")))
    steps.run(
        "created_again",
        lambda: str(api.create_repo(repo_id, repo_type="dataset", exist_ok=True)),
    )

    def upload(path: str, data: bytes) -> str:
        commit = api.upload_file(
            path_or_fileobj=data, path_in_repo=path, repo_id=repo_id, repo_type="dataset"
        )
        return str(commit.oid)

    steps.run("upload_train", functools.partial(upload, TRAIN, train))
    steps.run("upload_eval", functools.partial(upload, EVAL, evaluation))
    steps.run("files", lambda: api.list_repo_files(repo_id, repo_type="dataset"))
    steps.run(
        "tree_data",
        lambda: [
            (e.path, type(e).__name__)
            for e in api.list_repo_tree(repo_id, path_in_repo="data", repo_type="dataset")
        ],
    )
    steps.run(
        "paths_info",
        lambda: [
            (e.path, type(e).__name__)
            for e in api.get_paths_info(
                repo_id, [TRAIN, "data", "missing.jsonl"], repo_type="dataset"
            )
        ],
    )

    def info() -> dict[str, Any]:
        got = api.dataset_info(repo_id)
        siblings = got.siblings or []
        return {"id": got.id, "sha": got.sha, "siblings": sorted(x.rfilename for x in siblings)}

    steps.run("info", info)
    with tempfile.TemporaryDirectory() as cache:
        for path in (TRAIN, EVAL):
            steps.run(f"download {path}", functools.partial(_download, api, repo_id, path, cache))
    steps.run(
        "exists",
        lambda: {
            path: api.file_exists(repo_id, path, repo_type="dataset")
            for path in (TRAIN, EVAL, "missing.jsonl")
        },
    )
    steps.run(
        "delete_eval",
        lambda: api.delete_file(EVAL, repo_id, repo_type="dataset").oid,
    )
    steps.run("files_after_delete", lambda: api.list_repo_files(repo_id, repo_type="dataset"))
    steps.run("info_after_delete", info)
    steps.run("deleted", lambda: api.delete_repo(repo_id, repo_type="dataset") is None)
    steps.run("repo_exists_after_delete", lambda: api.repo_exists(repo_id, repo_type="dataset"))
    steps.run(
        "delete_missing_ok",
        lambda: api.delete_repo(repo_id, repo_type="dataset", missing_ok=True) is None,
    )
    return s


def main(argv: list[str]) -> None:
    endpoint, command, repo_id, *rest = argv
    api = huggingface_hub.HfApi(endpoint=endpoint, token=TOKEN)
    if command == "scenario":
        summary = scenario(api, repo_id)
    elif command == "upload":
        path, local = rest
        steps = _Steps()
        steps.run(
            "created",
            lambda: str(api.create_repo(repo_id, repo_type="dataset", exist_ok=True)),
        )
        steps.run(
            "upload",
            lambda: (
                api.upload_file(
                    path_or_fileobj=local, path_in_repo=path, repo_id=repo_id, repo_type="dataset"
                ).oid
            ),
        )
        summary = steps.summary
    elif command == "download":
        (path,) = rest
        steps = _Steps()
        with tempfile.TemporaryDirectory() as cache:
            steps.run("download", lambda: _download(api, repo_id, path, cache))
        summary = steps.summary
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
