"""Which chat requests a real server answers (pure: decided from the state alone).

A request for the real model id goes to a ready deployment of it. A request for a customized
model of the real model goes to the same server with its adapter applied, once a real adapter is
registered; until then (no real trainer yet) the heuristic adapter answers it, as it does for
every other customized model. Everything else stays with the heuristic models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flywheel_nmp_emulator.state.records import CustomizedModel, Deployment


@dataclass(frozen=True)
class RealRoute:
    deployment: str
    """The deployment ("namespace/name") whose server answers."""
    adapter: str | None
    """The customized model whose adapter the request applies; None = the base model."""


def real_route(
    model_id: str,
    real_model_id: str,
    deployments: Mapping[str, Deployment],
    models: Mapping[str, CustomizedModel],
) -> RealRoute | None:
    customized = models.get(model_id)
    base = customized.base_model if customized is not None else model_id
    if base != real_model_id:
        return None
    if customized is not None and customized.lora_gguf is None:
        return None
    # Several ready deployments of one model: any serves it; the first by key, so that one
    # server keeps its prompt cache warm.
    ready = sorted(key for key, d in deployments.items() if d.model == base and d.status == "ready")
    if not ready:
        return None
    return RealRoute(ready[0], model_id if customized is not None else None)
