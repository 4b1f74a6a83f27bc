"""The deterministic names of nmp-contract.md §4.1."""

import pytest

from flywheel_contracts.runtime.nmp import names

pytestmark = pytest.mark.unit


def test_deployment_name_replaces_every_slash() -> None:
    assert names.nmp_model_name("meta/llama-3.2-1b-instruct") == "meta-llama-3.2-1b-instruct"
    assert names.nmp_model_name("a/b/c") == "a-b-c"


def test_customization_config_name_and_ref() -> None:
    assert (
        names.customization_config_name("meta/llama-3.2-1b-instruct")
        == "llama-3.2-1b-instruct@v1.0.0+dfw"
    )
    assert (
        names.customization_config_ref("dfwbp", "meta/llama-3.2-1b-instruct")
        == "dfwbp/llama-3.2-1b-instruct@v1.0.0+dfw"
    )


@pytest.mark.parametrize("model", ["llama-3.2-1b-instruct", "a/b/c"])
def test_customization_config_needs_exactly_one_slash(model: str) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        names.customization_config_name(model)


def test_output_model_and_job_name() -> None:
    model = "meta/llama-3.2-1b-instruct"
    assert names.output_model_name("dfwbp", model) == "dfwbp/customized-meta-llama-3.2-1b-instruct"
    assert names.customization_job_name("w1", model) == f"customization-w1-{model}"


def test_dataset_names_and_files_urls() -> None:
    name = names.dataset_name("icl", "aiva_1", 1700000000)
    assert name == "flywheel-icl-aiva_1-1700000000"
    assert names.dataset_files_url("dfwbp", name) == f"hf://datasets/dfwbp/{name}"
    assert (
        names.dataset_files_url("dfwbp", name, "eval_data.jsonl")
        == f"hf://datasets/dfwbp/{name}/eval_data.jsonl"
    )


def test_names_are_pure() -> None:
    assert names.dataset_name("eval", "w", "r1") == names.dataset_name("eval", "w", "r1")
