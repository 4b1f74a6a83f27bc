"""What a customizer test puts into NMP (a train dataset, a serving base model) and takes out
again afterwards, through the shared NMP client in the sandbox's namespace."""

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from flywheel_contracts.runtime.nmp import NimDeploymentSpec, NmpClient, NmpError, NmpSettings

Record = Mapping[str, Any]


class NmpWorkspace:
    def __init__(self, settings: NmpSettings) -> None:
        self.nmp = NmpClient(settings)
        self._datasets: list[str] = []
        self._deployments: list[str] = []
        self._configs: list[str] = []
        self._models: list[str] = []

    async def upload_dataset(self, name: str, files: Mapping[str, Sequence[Record]]) -> None:
        """A dataset repo with `files` (path -> JSONL records), registered in the Entity Store."""
        self._datasets.append(name)
        await self.nmp.data_store.create_repo(name)
        for path, records in files.items():
            content = "".join(json.dumps(record) + "\n" for record in records).encode()
            await self.nmp.data_store.upload_file(name, path, content)
        await self.nmp.entity_store.register_dataset(name)

    async def deploy(self, model: str, timeout_s: float = 30.0) -> None:
        """A ready deployment of `model`: a customized model is served only on its base NIM."""
        self._deployments.append(model)
        await self.nmp.deployments.create(model, NimDeploymentSpec(image_tag="1.8.3"))
        deadline = time.monotonic() + timeout_s
        while (await self.nmp.deployments.get(model)).status != "ready":
            if time.monotonic() > deadline:
                raise AssertionError(f"{model} not deployed within {timeout_s}s")
            await asyncio.sleep(0.1)

    def forget_later(self, *, config_of: str | None = None, model: str | None = None) -> None:
        """Delete this customization config (by base model) or customized model on close."""
        if config_of is not None:
            self._configs.append(config_of)
        if model is not None:
            self._models.append(model)

    async def aclose(self) -> None:
        """Remove everything noted, whatever is already gone."""
        removals = [
            *(self.nmp.entity_store.delete_model(model) for model in self._models),
            *(self.nmp.deployments.delete(model) for model in self._deployments),
            *(self.nmp.customizer.delete_config(model) for model in self._configs),
            *(self.nmp.entity_store.delete_dataset(name) for name in self._datasets),
            *(self.nmp.data_store.delete_repo(name) for name in self._datasets),
        ]
        for removal in removals:
            with contextlib.suppress(NmpError):
                await removal
        await self.nmp.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
