"""Input events for the customizer's tests, shaped after the golden examples."""

from typing import Any
from uuid import UUID, uuid4

from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.events import DatasetRef, DeploymentRef, NimUp, RunCancelled
from flywheel_contracts.examples import EXAMPLES
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.run_config import CandidateConfig, TrainingConfig
from flywheel_contracts.runtime.nmp.names import dataset_files_url, nmp_model_name

SMALL_MODEL = "meta/llama-3.2-1b-instruct"


def candidate(
    model_name: str = SMALL_MODEL, *, gpus: int = 1, enabled: bool = True
) -> CandidateConfig:
    """A candidate trained on `gpus` GPUs (target `<model>@2.0`, as NMP names them)."""
    return CandidateConfig(
        model_name=model_name,
        customization_enabled=enabled,
        customization_target=f"{model_name}@2.0",
        customization_gpus=gpus,
    )


def nim_up(
    *,
    run_id: UUID | None = None,
    model: CandidateConfig | None = None,
    namespace: str = "dfwbp",
    train_dataset: str = "flywheel-train-test",
    training: TrainingConfig | None = None,
    base_url: str = "http://127.0.0.1:8700/v1",
) -> Envelope[NimUp]:
    """`nim.up` of a fresh run (or `run_id`) for `model`, training on `namespace/train_dataset`."""
    template: NimUp = EXAMPLES["nim.up"].payload
    chosen = model or candidate()
    context = template.context
    config = context.config.model_copy(
        update={"candidates": (chosen,), "training": training or context.config.training}
    )
    datasets = context.datasets.model_copy(
        update={
            "train": DatasetRef(
                namespace=namespace,
                name=train_dataset,
                files_url=dataset_files_url(namespace, train_dataset),
            )
        }
    )
    payload = NimUp(
        candidate=chosen,
        deployment=DeploymentRef(
            namespace=namespace,
            name=nmp_model_name(chosen.model_name),
            base_url=base_url,
            model_id=chosen.model_name,
        ),
        context=context.model_copy(update={"datasets": datasets, "config": config}),
    )
    return _root(payload, run_id or uuid4(), producer="nim-manager")


def run_cancelled(run_id: UUID, reason: str = "cancelled by test") -> Envelope[RunCancelled]:
    return _root(RunCancelled(reason=reason), run_id, producer="client")


def _root(payload: EventPayload, run_id: UUID, *, producer: str) -> Envelope[Any]:
    # Validated afresh: model_copy above skips the validators (e.g. RunConfig's consistency).
    validated = type(payload).model_validate(payload.model_dump())
    return new_event(validated, producer=producer, run_id=run_id)
