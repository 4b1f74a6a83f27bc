"""The Data Store's HF-compatible API driven by real huggingface_hub releases, each in a venv of
its own (cached under .cache/venvs/), against a real emulator process; and our own DataStore
client (contracts) trading files with huggingface_hub through it.

Versions: 0.30.2 is the one NVIDIA's data flywheel blueprint pins; 0.36.2 is the newest release
below 1.0 (1.0 was a breaking major). 2.4.0, the newest release, raises HfUriError after every
commit because it cannot parse the empty `commitUrl` that real NMP answers (huggingface_hub
1.20 and later do); the test pins that the commits still land and everything else works."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flywheel_contracts.runtime.nmp import NmpClient, NmpSettings
from flywheel_localstack.installers import cached_venv
from flywheel_nmp_emulator.testing import emulator_process, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
UV = ROOT / "scripts" / "uv"
VENVS = ROOT / ".cache" / "venvs"
DRIVER = Path(__file__).with_name("hf_hub_driver.py")
BLUEPRINT_PIN = "0.30.2"
NEWEST_BEFORE_1 = "0.36.2"
NEWEST = "2.4.0"
TRAIN, EVAL = "data/train.jsonl", "eval.jsonl"
HEX40 = set("0123456789abcdef")


def hub_python(version: str) -> Path:
    """The python of a venv holding huggingface_hub==version, made on first use and reused."""
    return cached_venv(f"huggingface_hub-{version}", [f"huggingface_hub=={version}"])


@pytest.fixture(scope="module")
def datastore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a real emulator process (its Data Store)."""
    state = tmp_path_factory.mktemp("nmp") / "state.json"
    with emulator_process(state, free_port()) as client:
        yield str(client.base_url).rstrip("/")


def drive(version: str, datastore: str, home: Path, *args: str) -> dict[str, Any]:
    """Runs hf_hub_driver.py with huggingface_hub==version; its JSON summary."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_HOME=str(home),  # no token or cache of the machine's user is read or written
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    command = [str(hub_python(version)), str(DRIVER), f"{datastore}/v1/hf", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert summary["version"] == version
    return summary


def _is_commit_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 40 and set(value) <= HEX40


@pytest.mark.parametrize("version", [BLUEPRINT_PIN, NEWEST_BEFORE_1, NEWEST])
def test_huggingface_hub_round_trip(version: str, datastore: str, tmp_path: Path) -> None:
    repo_id = f"hub/round-trip-{version.replace('.', '-')}"
    s = drive(version, datastore, tmp_path, "scenario", repo_id)
    if version == NEWEST:
        # The commits land (see the listings and downloads below); only reading the answer fails.
        commits = ("upload_train", "upload_eval", "delete_eval")
        assert set(s["errors"]) == set(commits), s["errors"]
        assert all(s["errors"][c].startswith("HfUriError: ") for c in commits), s["errors"]
        assert s["info"]["sha"] != s["info_after_delete"]["sha"]
    else:
        assert s["errors"] == {}
        assert _is_commit_id(s["upload_train"]) and _is_commit_id(s["upload_eval"])
        assert s["info"]["sha"] == s["upload_eval"]
        assert s["info_after_delete"]["sha"] == s["delete_eval"] != s["upload_eval"]
    url = f"{datastore}/v1/hf/datasets/{repo_id}"
    assert s["created"] == s["created_again"] == url
    assert s["files"] == [TRAIN, EVAL]
    assert s["tree_data"] == [[TRAIN, "RepoFile"]]
    assert s["paths_info"] == [[TRAIN, "RepoFile"], ["data", "RepoFolder"]]
    assert s["info"]["id"] == repo_id and s["info"]["siblings"] == [TRAIN, EVAL]
    # Same sha256 and size as what was uploaded: the bytes came back unchanged.
    assert s[f"download {TRAIN}"] == s["uploaded"][TRAIN]
    assert s[f"download {EVAL}"] == s["uploaded"][EVAL]
    assert s["exists"] == {TRAIN: True, EVAL: True, "missing.jsonl": False}
    assert s["files_after_delete"] == [TRAIN]
    assert s["info_after_delete"]["siblings"] == [TRAIN]
    assert s["deleted"] is True
    assert s["repo_exists_after_delete"] is False
    assert s["delete_missing_ok"] is True


@pytest.mark.parametrize("version", [BLUEPRINT_PIN, NEWEST_BEFORE_1])
async def test_our_client_and_huggingface_hub_read_each_others_files(
    version: str, datastore: str, tmp_path: Path
) -> None:
    name = f"interop-{version.replace('.', '-')}"
    settings = NmpSettings(
        datastore_base_url=datastore, namespace="hub", hf_token="flywheel-test-token"
    )
    ours = b"".join(json.dumps({"n": n, "s": '\u00e9\\/"'}).encode() + b"\n" for n in range(999))
    theirs = bytes(range(256)) * 3
    async with NmpClient(settings) as nmp:
        await nmp.data_store.create_repo(name)
        commit = await nmp.data_store.upload_file(name, "ours/train.jsonl", ours)
        assert commit.commit_url == "" and _is_commit_id(commit.commit_oid)

        got = drive(version, datastore, tmp_path, "download", f"hub/{name}", "ours/train.jsonl")
        assert got["errors"] == {}
        assert got["download"] == {"sha256": hashlib.sha256(ours).hexdigest(), "size": len(ours)}

        local = tmp_path / "theirs.bin"
        local.write_bytes(theirs)
        sent = drive(
            version, datastore, tmp_path, "upload", f"hub/{name}", "hub/eval.bin", str(local)
        )
        assert sent["errors"] == {} and _is_commit_id(sent["upload"])
        assert await nmp.data_store.download_file(name, "hub/eval.bin") == theirs
        assert await nmp.data_store.download_file(name, "ours/train.jsonl") == ours
        await nmp.data_store.delete_repo(name)
