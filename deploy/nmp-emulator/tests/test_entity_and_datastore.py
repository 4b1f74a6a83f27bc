"""Entity Store (namespaces, datasets, models) and Data Store (namespaces, HF subset) calls."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_nmp_emulator.config import Settings
from flywheel_nmp_emulator.testing import (
    customization_config,
    hyperparameters,
    in_process,
    upload_dataset,
)

pytestmark = pytest.mark.unit


async def test_namespaces_conflict_on_duplicates(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/namespaces", json={"id": "dfwbp"})).status_code == 201
    assert (await client.post("/v1/namespaces", json={"id": "dfwbp"})).status_code == 409
    # D2 is form-encoded, not JSON.
    assert (
        await client.post("/v1/datastore/namespaces", data={"namespace": "dfwbp"})
    ).status_code == 201
    assert (
        await client.post("/v1/datastore/namespaces", data={"namespace": "dfwbp"})
    ).status_code == 409
    assert (
        await client.post("/v1/datastore/namespaces", json={"namespace": "x"})
    ).status_code == 422


async def test_dataset_registration_get_post_patch_delete(client: httpx.AsyncClient) -> None:
    path = "/v1/datasets/dfwbp/flywheel-eval-w-1"
    assert (await client.get(path)).status_code == 404
    body = {
        "name": "flywheel-eval-w-1",
        "namespace": "dfwbp",
        "description": "",
        "files_url": "hf://datasets/dfwbp/flywheel-eval-w-1",
        "project": "flywheel",
    }
    created = await client.post("/v1/datasets", json=body)
    assert created.status_code == 200 and created.json()["files_url"] == body["files_url"]
    assert (await client.post("/v1/datasets", json=body)).status_code == 409
    patched = await client.patch(path, json={"description": "eval split"})
    assert patched.status_code == 200 and patched.json()["description"] == "eval split"
    assert (await client.get(path)).json()["files_url"] == "hf://datasets/dfwbp/flywheel-eval-w-1"
    assert (await client.delete(path)).status_code == 200
    assert (await client.get(path)).status_code == 404
    assert (await client.delete(path)).status_code == 404


async def test_hf_upload_download_and_delete(client: httpx.AsyncClient) -> None:
    records: list[dict[str, Any]] = [
        {"request": {"messages": [{"role": "user", "content": "hi"}]}},
        {"n": 2},
    ]
    files_url = await upload_dataset(
        client,
        "dfwbp",
        "ds",
        {"eval_data.jsonl": records, "training/train_data.jsonl": records[:1]},
    )
    assert files_url == "hf://datasets/dfwbp/ds"
    create = {"name": "ds", "organization": "dfwbp", "type": "dataset"}
    assert (await client.post("/v1/hf/api/repos/create", json=create)).status_code == 409
    got = await client.get("/v1/hf/datasets/dfwbp/ds/resolve/main/eval_data.jsonl")
    assert got.status_code == 200
    assert [json.loads(line) for line in got.content.splitlines()] == records
    nested = await client.get("/v1/hf/datasets/dfwbp/ds/resolve/main/training/train_data.jsonl")
    assert json.loads(nested.content) == records[0]
    info = (await client.get("/v1/hf/api/datasets/dfwbp/ds")).json()
    assert {s["rfilename"] for s in info["siblings"]} == {
        "eval_data.jsonl",
        "training/train_data.jsonl",
    }
    missing = await client.get("/v1/hf/datasets/dfwbp/ds/resolve/main/nope.jsonl")
    assert missing.status_code == 404 and missing.headers["x-error-code"] == "EntryNotFound"
    assert (
        await client.request("DELETE", "/v1/hf/api/repos/delete", json=create)
    ).status_code == 200
    assert (
        await client.get("/v1/hf/datasets/dfwbp/ds/resolve/main/eval_data.jsonl")
    ).status_code == 404
    assert (
        await client.request("DELETE", "/v1/hf/api/repos/delete", json=create)
    ).status_code == 404


async def test_commit_rejects_bad_operations(client: httpx.AsyncClient) -> None:
    await client.post(
        "/v1/hf/api/repos/create", json={"name": "ds", "organization": "dfwbp", "type": "dataset"}
    )
    url = "/v1/hf/api/datasets/dfwbp/ds/commit/main"
    escape = {
        "key": "file",
        "value": {"path": "../x", "content": base64.b64encode(b"x").decode(), "encoding": "base64"},
    }
    assert (await client.post(url, content=json.dumps(escape))).status_code == 422
    lfs = {"key": "lfsFile", "value": {"path": "big.bin", "oid": "abc"}}
    assert (await client.post(url, content=json.dumps(lfs))).status_code == 400
    assert (
        await client.post("/v1/hf/api/datasets/dfwbp/none/commit/main", content=b"")
    ).status_code == 404
    pre = await client.post(
        "/v1/hf/api/datasets/dfwbp/ds/preupload/main",
        json={"files": [{"path": "a.jsonl", "sample": "", "size": 1}]},
    )
    assert pre.json() == {
        "files": [{"path": "a.jsonl", "uploadMode": "regular", "shouldIgnore": False, "oid": None}]
    }


def _commit_body(files: dict[str, bytes], escape_slashes: bool = False) -> bytes:
    """The hub's NDJSON commit; `escape_slashes` writes "/" as "\\/", as some encoders do."""
    lines = [{"key": "header", "value": {"summary": "upload", "description": ""}}]
    lines += [
        {
            "key": "file",
            "value": {
                "content": base64.b64encode(content).decode(),
                "path": path,
                "encoding": "base64",
            },
        }
        for path, content in files.items()
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return (body.replace("/", "\\/") if escape_slashes else body).encode()


async def _in_pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("state", ["memory", "directory"])
@pytest.mark.parametrize("escape_slashes", [False, True])
async def test_a_large_commit_streamed_in_odd_pieces_lands_intact(
    state: str, escape_slashes: bool, tmp_path: Path
) -> None:
    """Values over the inline limit are spooled and decoded from disk; piece boundaries fall
    anywhere (inside escapes, between lines)."""
    rng = random.Random(5)
    big = rng.randbytes(3 * 2**20 + 7)  # random bytes: its base64 is full of "/"
    files = {"training/train_data.jsonl": big, "validation/val_data.jsonl": b'{"a": 1}'}
    settings = Settings(state_file=tmp_path / "nmp.json" if state == "directory" else None)
    async with in_process(settings) as client:
        repo = {"name": "big", "organization": "dfwbp", "type": "dataset"}
        assert (await client.post("/v1/hf/api/repos/create", json=repo)).status_code == 200
        body = _commit_body(files, escape_slashes)
        committed = await client.post(
            "/v1/hf/api/datasets/dfwbp/big/commit/main",
            content=_in_pieces(body, 65_537),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert committed.status_code == 200, committed.text
        for path, content in files.items():
            got = await client.get(f"/v1/hf/datasets/dfwbp/big/resolve/main/{path}")
            assert got.content == content
        info = (await client.get("/v1/hf/api/datasets/dfwbp/big")).json()
        assert {s["rfilename"]: s["size"] for s in info["siblings"]} == {
            path: len(content) for path, content in files.items()
        }


async def test_escapes_survive_a_body_sent_a_byte_at_a_time(client: httpx.AsyncClient) -> None:
    repo = {"name": "ds", "organization": "dfwbp", "type": "dataset"}
    await client.post("/v1/hf/api/repos/create", json=repo)
    content = b'say "hi" \\ then\nleave'
    header = {"key": "header", "value": {"summary": 'quote " and \\', "description": ""}}
    value = {"content": content.decode(), "path": "a.txt", "encoding": "utf-8"}
    file_line = {"key": "file", "value": value}
    body = (json.dumps(header) + "\n" + json.dumps(file_line)).encode()
    committed = await client.post(
        "/v1/hf/api/datasets/dfwbp/ds/commit/main", content=_in_pieces(body, 1)
    )
    assert committed.status_code == 200, committed.text
    got = await client.get("/v1/hf/datasets/dfwbp/ds/resolve/main/a.txt")
    assert got.content == content


async def test_a_broken_large_commit_changes_nothing(client: httpx.AsyncClient) -> None:
    repo = {"name": "ds", "organization": "dfwbp", "type": "dataset"}
    await client.post("/v1/hf/api/repos/create", json=repo)
    url = "/v1/hf/api/datasets/dfwbp/ds/commit/main"
    good = _commit_body({"a.jsonl": b"x" * (2 * 2**20)})
    not_base64 = good.replace(b'"content": "eH', b'"content": "*H', 1)
    assert (await client.post(url, content=not_base64)).status_code == 422
    unterminated = good[: len(good) // 2]
    assert (await client.post(url, content=unterminated)).status_code == 422
    info = (await client.get("/v1/hf/api/datasets/dfwbp/ds")).json()
    assert info["siblings"] == []


async def test_model_ids_with_slashes_and_at_signs(client: httpx.AsyncClient) -> None:
    await client.post(
        "/v1/hf/api/repos/create", json={"name": "t", "organization": "dfwbp", "type": "dataset"}
    )
    await client.post(
        "/v1/customization/configs",
        json=customization_config("meta/llama-3.2-1b-instruct", name="m@v1.0.0+dfw"),
    )
    job = await client.post(
        "/v1/customization/jobs",
        json={
            "config": "dfwbp/m@v1.0.0+dfw",
            "dataset": {"name": "t", "namespace": "dfwbp"},
            "output_model": "dfwbp/customized-meta-llama-3.2-1b-instruct",
            "hyperparameters": hyperparameters(),
        },
    )
    model_id = job.json()["output_model"]
    assert model_id.startswith("dfwbp/customized-meta-llama-3.2-1b-instruct@cust-")
    got = await client.get(f"/v1/models/{model_id}")
    assert got.status_code == 200
    assert f"{got.json()['namespace']}/{got.json()['name']}" == model_id
    encoded = await client.get("/v1/models/" + model_id.replace("@", "%40"))
    assert encoded.status_code == 200
    assert (await client.delete(f"/v1/models/{model_id}")).status_code == 200
    assert (await client.get(f"/v1/models/{model_id}")).status_code == 404
