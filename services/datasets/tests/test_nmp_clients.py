"""Publishing datasets and embedding texts through the NMP client, against RecordedNmp."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from flywheel_contracts.runtime.nmp import NmpClient, NmpSettings
from flywheel_contracts.runtime.nmp.testing import RecordedNmp, RecordingTransport
from flywheel_datasets.clients.nmp import NmpDatasets, NmpEmbeddings
from flywheel_datasets.errors import EmbeddingUnavailable, UploadFailed

pytestmark = pytest.mark.unit

CONTENTS = {
    "training/train_data.jsonl": b'{"a":1}\n{"a":2}',
    "validation/val_data.jsonl": b'{"a":3}',
}


def _on_disk(directory: Path, contents: dict[str, bytes]) -> dict[str, Path]:
    files = {}
    for name, content in contents.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        files[name] = path
    return files


async def _no_wait(_: float) -> None:
    return None


@pytest.fixture
def nmp() -> RecordedNmp:
    return RecordedNmp()


@pytest.fixture
async def client(nmp: RecordedNmp) -> AsyncIterator[NmpClient]:
    async with NmpClient(NmpSettings(), transport=nmp.transport(), sleep=_no_wait) as client:
        yield client


async def test_a_dataset_is_uploaded_registered_and_can_be_read_back(
    nmp: RecordedNmp, client: NmpClient, tmp_path: Path
) -> None:
    ref = await NmpDatasets(client).publish("flywheel-train-w-1", _on_disk(tmp_path, CONTENTS))
    assert (ref.namespace, ref.name) == ("dfwbp", "flywheel-train-w-1")
    assert ref.files_url == "hf://datasets/dfwbp/flywheel-train-w-1"
    assert nmp.state.repos["dfwbp/flywheel-train-w-1"] == CONTENTS
    assert "dfwbp/flywheel-train-w-1" in nmp.state.datasets
    for path, content in CONTENTS.items():
        assert await client.data_store.download_file("flywheel-train-w-1", path) == content


async def test_publishing_again_reuses_the_dataset(
    nmp: RecordedNmp, client: NmpClient, tmp_path: Path
) -> None:
    datasets = NmpDatasets(client)
    files = _on_disk(tmp_path, {"eval_data.jsonl": b"{}"})
    first = await datasets.publish("flywheel-eval-w-1", files)
    again = await datasets.publish("flywheel-eval-w-1", files)
    assert first == again
    assert list(nmp.state.repos) == ["dfwbp/flywheel-eval-w-1"]


async def test_delete_removes_files_and_registration_and_tolerates_absence(
    nmp: RecordedNmp, client: NmpClient, tmp_path: Path
) -> None:
    datasets = NmpDatasets(client)
    await datasets.publish("flywheel-eval-w-1", _on_disk(tmp_path, {"eval_data.jsonl": b"{}"}))
    await datasets.delete("flywheel-eval-w-1")
    await datasets.delete("flywheel-eval-w-1")
    assert not nmp.state.repos
    assert not nmp.state.datasets


async def test_a_refused_upload_is_an_upload_failure(nmp: RecordedNmp, tmp_path: Path) -> None:
    def refuse_commits(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/commit/main"):
            return httpx.Response(413, json={"detail": "payload too large"})
        return nmp.handle(request)

    transport = RecordingTransport(httpx.MockTransport(refuse_commits))
    files = _on_disk(tmp_path, {"eval_data.jsonl": b"{}"})
    async with NmpClient(NmpSettings(), transport=transport, sleep=_no_wait) as client:
        with pytest.raises(UploadFailed, match=r"flywheel-eval-w-1 could not be published.*413"):
            await NmpDatasets(client).publish("flywheel-eval-w-1", files)
    assert "dfwbp/flywheel-eval-w-1" not in nmp.state.datasets


async def test_embeddings_come_in_batches_in_order(client: NmpClient) -> None:
    embeddings = NmpEmbeddings(client.nim, "nvidia/llama-3.2-nv-embedqa-1b-v2", batch_size=2)
    vectors = await embeddings.embed(["a", "b", "c"])
    assert len(vectors) == 3
    assert vectors[0] != vectors[1]


async def test_an_unavailable_embeddings_endpoint_is_an_embedding_failure() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"detail": "down"})

    async with NmpClient(
        NmpSettings(), transport=httpx.MockTransport(down), sleep=_no_wait
    ) as client:
        with pytest.raises(EmbeddingUnavailable, match=r"embeddings from m failed"):
            await NmpEmbeddings(client.nim, "m", batch_size=8).embed(["a"])
