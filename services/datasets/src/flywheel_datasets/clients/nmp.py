"""NMP as the build sees it: a place to publish datasets, and an embeddings endpoint."""

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from flywheel_contracts.events import DatasetRef
from flywheel_contracts.runtime.nmp import NmpClient, NmpError, NmpNotFound
from flywheel_datasets.errors import EmbeddingUnavailable, UploadFailed

_DESCRIPTION = "Flywheel dataset built from logged traffic"


class NmpDatasets:
    """Data Store repos plus Entity Store registrations, named by the caller (deterministic
    names make every step safe to repeat: an existing repo or registration is reused and a file
    upload replaces the file)."""

    def __init__(self, nmp: NmpClient) -> None:
        self._nmp = nmp
        self._namespaces_ready = False

    async def publish(self, name: str, files: Mapping[str, Path]) -> DatasetRef:
        try:
            await self._ensure_namespaces()
            await self._nmp.data_store.create_repo(name)
            for path, source in files.items():
                await self._nmp.data_store.upload_file(name, path, source)
            await self._nmp.entity_store.register_dataset(name, description=_DESCRIPTION)
            files_url = await self._nmp.entity_store.dataset_files_url(name)
        except NmpError as exc:
            raise UploadFailed(f"dataset {name} could not be published: {exc}") from exc
        return DatasetRef(namespace=self._nmp.settings.namespace, name=name, files_url=files_url)

    async def delete(self, name: str) -> None:
        with contextlib.suppress(NmpNotFound):
            await self._nmp.entity_store.delete_dataset(name)
        with contextlib.suppress(NmpNotFound):
            await self._nmp.data_store.delete_repo(name)

    async def _ensure_namespaces(self) -> None:
        if not self._namespaces_ready:
            await self._nmp.entity_store.create_namespace()
            await self._nmp.data_store.create_namespace()
            self._namespaces_ready = True


class EmbeddingSource(Protocol):
    """An embeddings endpoint: `EmbeddingsEndpoint`, or the NMP client's `nim`."""

    async def embeddings(self, texts: Sequence[str], *, model: str) -> list[list[float]]: ...


class NmpEmbeddings:
    """An embeddings endpoint, in batches."""

    def __init__(self, source: EmbeddingSource, model: str, batch_size: int) -> None:
        self._source = source
        self._model = model
        self._batch_size = batch_size

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        try:
            for start in range(0, len(texts), self._batch_size):
                batch = texts[start : start + self._batch_size]
                vectors.extend(await self._source.embeddings(batch, model=self._model))
        except NmpError as exc:
            raise EmbeddingUnavailable(f"embeddings from {self._model} failed: {exc}") from exc
        return vectors
