"""Deterministic NMP resource names (nmp-contract.md §4.1).

Every name is a pure function of its inputs, so a redelivered event targets the same resource
and NMP's "already exists" answer proves the earlier attempt took effect.
"""

from typing import Literal

DatasetKind = Literal["eval", "icl", "train"]

CONFIG_VERSION_SUFFIX = "@v1.0.0+dfw"


def nmp_model_name(model_name: str) -> str:
    """The DMS deployment name: ``meta/llama-3.2-1b-instruct`` -> ``meta-llama-3.2-1b-instruct``."""
    return model_name.replace("/", "-")


def customization_config_name(base_model: str) -> str:
    """``meta/llama-3.2-1b-instruct`` -> ``llama-3.2-1b-instruct@v1.0.0+dfw``."""
    if base_model.count("/") != 1:
        raise ValueError(f"base model must be '<org>/<model>' with exactly one '/': {base_model!r}")
    return base_model.split("/", 1)[1] + CONFIG_VERSION_SUFFIX


def customization_config_ref(namespace: str, base_model: str) -> str:
    """How a customization job names its config: ``{ns}/{config name}``."""
    return f"{namespace}/{customization_config_name(base_model)}"


def customization_job_name(workload_id: str, model_name: str) -> str:
    return f"customization-{workload_id}-{model_name}"


def output_model_name(namespace: str, model_name: str) -> str:
    """The requested output model; NMP answers with this plus ``@cust-<id>``."""
    return f"{namespace}/customized-{nmp_model_name(model_name)}"


def dataset_name(kind: DatasetKind, workload_id: str, stamp: str | int) -> str:
    """``flywheel-{kind}-{workload_id}-{stamp}``; pass a stamp derived from the run, not the clock,
    so that a retried run step reuses its dataset."""
    return f"flywheel-{kind}-{workload_id}-{stamp}"


def dataset_files_url(namespace: str, name: str, path_in_repo: str | None = None) -> str:
    """``hf://datasets/{ns}/{name}`` (Entity Store registration) or a file inside it (eval tasks)."""
    url = f"hf://datasets/{namespace}/{name}"
    return f"{url}/{path_in_repo}" if path_in_repo else url
