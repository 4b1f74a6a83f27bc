"""What the NIM proxy serves right now, and the model object behind each served id.

Served: the always-served models (hosted judge / embedding), every deployment that is ready (by
its config.model), and every customized model whose adapter is trained, whose model-sync delay
has passed and whose base model is itself served (a LoRA adapter runs on its base NIM).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel_nmp_emulator.models.instruct import InstructModel
from flywheel_nmp_emulator.models.lora import Adapter

if TYPE_CHECKING:
    from flywheel_nmp_emulator.runtime import Emulator


class ModelCatalog:
    def __init__(self, emulator: Emulator) -> None:
        self._emu = emulator
        self._adapters: dict[str, Adapter] = {}
        self._models: dict[tuple[str, str | None, bool], InstructModel] = {}

    def _base_served(self, model_id: str) -> bool:
        if model_id in self._emu.settings.served_without_deployment():
            return True
        return any(
            d.model == model_id and d.status == "ready"
            for d in self._emu.state.deployments.values()
        )

    def _customized_served(self, model_id: str, now: float) -> bool:
        model = self._emu.state.models.get(model_id)
        return (
            model is not None
            and model.trained_at is not None
            and now >= model.trained_at + self._emu.timings.model_sync_seconds
            and self._base_served(model.base_model)
        )

    def is_served(self, model_id: str) -> bool:
        return self._base_served(model_id) or self._customized_served(model_id, self._emu.clock())

    def served_ids(self) -> list[str]:
        now = self._emu.clock()
        ids = list(self._emu.settings.served_without_deployment())
        ids += [d.model for d in self._emu.state.deployments.values() if d.status == "ready"]
        ids += [m for m in self._emu.state.models if self._customized_served(m, now)]
        return list(dict.fromkeys(ids))

    def is_judge(self, model_id: str) -> bool:
        return "judge" in model_id.lower() or model_id == self._emu.settings.judge_model

    def is_embedding(self, model_id: str) -> bool:
        return model_id == self._emu.settings.embedding_model or "embed" in model_id.lower()

    def chat_model(self, model_id: str) -> InstructModel | None:
        """The model behind an id, or None when the proxy does not serve it."""
        if not self.is_served(model_id):
            return None
        customized = self._emu.state.models.get(model_id) is not None
        return self._model(model_id, judge=not customized and self.is_judge(model_id))

    def judge_model(self, model_id: str) -> InstructModel:
        """The judge an evaluation metric names (a local name or a remote endpoint's model id);
        the evaluator reaches it in-process, so it need not be deployed."""
        return self._model(model_id, judge=True)

    def _model(self, model_id: str, judge: bool) -> InstructModel:
        customized = self._emu.state.models.get(model_id)
        adapter_key = customized.adapter_key if customized else None
        cached = self._models.get((model_id, adapter_key, judge))
        if cached is not None:
            return cached
        model = InstructModel(
            # Capacity follows the base model; the name leaves out the random job id so that the
            # same seed gives the same answers in every run.
            name=f"{customized.base_model}+lora" if customized else model_id,
            kit=self._emu.kit,
            seed=self._emu.settings.seed,
            adapter=self._adapter(adapter_key) if adapter_key else None,
            judge=judge,
        )
        self._models[(model_id, adapter_key, judge)] = model
        return model

    def _adapter(self, key: str) -> Adapter | None:
        adapter = self._adapters.get(key)
        if adapter is None:
            data = self._emu.store.blobs.get(key)
            if data is None:
                return None
            adapter = self._adapters[key] = Adapter.from_json(data)
        return adapter

    def forget(self, model_id: str) -> None:
        """Drop cached objects of a deleted model."""
        for key in [k for k in self._models if k[0] == model_id]:
            del self._models[key]
