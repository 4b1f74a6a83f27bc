"""The resolved run configuration: defaults, consistency rules and per-run overrides."""

import pytest
from pydantic import ValidationError

from flywheel_contracts.examples import CONFIG
from flywheel_contracts.run_config import (
    CandidateConfig,
    EvalType,
    ExampleSelection,
    ExternalEndpoint,
    RunConfig,
    RunOverrides,
    SplitConfig,
)

pytestmark = pytest.mark.unit

_ONE = (CandidateConfig(model_name="meta/llama-3.2-1b-instruct"),)


def test_defaults_follow_the_blueprint() -> None:
    config = RunConfig(workload_id="w", client_id="c", candidates=_ONE)
    assert (config.split.eval_size, config.split.val_ratio, config.split.limit) == (20, 0.1, 10_000)
    assert config.training.epochs == 2
    assert config.training.lora.adapter_dim == 32
    assert config.icl.max_examples == 3
    assert config.evaluation.eval_types == (EvalType.BASE, EvalType.ICL, EvalType.CUSTOMIZED)


def test_customization_needs_a_target() -> None:
    with pytest.raises(ValidationError, match="customization_target"):
        CandidateConfig(model_name="m/x", customization_enabled=True)


def test_candidates_are_unique_and_present() -> None:
    with pytest.raises(ValidationError, match="unique"):
        RunConfig(workload_id="w", client_id="c", candidates=_ONE * 2)
    with pytest.raises(ValidationError, match="at least 1"):
        RunConfig(workload_id="w", client_id="c", candidates=())


def test_split_sizes_must_fit() -> None:
    with pytest.raises(ValidationError, match="limit must be at least"):
        SplitConfig(limit=10, min_total_records=50)
    with pytest.raises(ValidationError, match="eval_size must be below limit"):
        SplitConfig(eval_size=100, limit=100, min_total_records=50)


def test_icl_examples_must_fit_in_the_eval_split() -> None:
    with pytest.raises(ValidationError, match="max_examples"):
        RunConfig.model_validate(
            {"workload_id": "w", "client_id": "c", "candidates": [{"model_name": "m/x"}]}
            | {"split": {"eval_size": 2}}
        )


def test_candidate_lookup() -> None:
    assert CONFIG.candidate("meta/llama-3.1-8b-instruct").gpus == 1
    with pytest.raises(KeyError):
        CONFIG.candidate("nope")


def test_every_override_lands_in_its_place() -> None:
    overrides = RunOverrides(
        candidates=_ONE,
        eval_size=30,
        val_ratio=0.2,
        min_total_records=60,
        limit=500,
        random_seed=7,
        icl_max_examples=2,
        example_selection=ExampleSelection.SEMANTIC_SIMILARITY,
        epochs=5,
        batch_size=8,
        learning_rate=0.001,
        adapter_dim=16,
        eval_types=(EvalType.BASE,),
    )
    config = CONFIG.with_overrides(overrides)
    assert config.candidates == _ONE
    assert config.split == SplitConfig(
        eval_size=30, val_ratio=0.2, min_total_records=60, limit=500, random_seed=7
    )
    assert config.icl.max_examples == 2
    assert config.icl.example_selection is ExampleSelection.SEMANTIC_SIMILARITY
    assert (config.training.epochs, config.training.batch_size) == (5, 8)
    assert config.training.learning_rate == 0.001
    assert config.training.lora.adapter_dim == 16
    assert config.evaluation.eval_types == (EvalType.BASE,)
    assert config.workload_id == CONFIG.workload_id


def test_empty_overrides_change_nothing() -> None:
    assert CONFIG.with_overrides(RunOverrides()) == CONFIG


def test_overrides_are_revalidated_against_the_whole_config() -> None:
    with pytest.raises(ValidationError, match="eval_size must be below limit"):
        CONFIG.with_overrides(RunOverrides(eval_size=5_000, limit=5_000))


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [
        ("limit", 10**12, "1000000"),
        ("min_total_records", 1_000_001, "1000000"),
        ("eval_size", 10_001, "10000"),
        ("icl_max_examples", 65, "64"),
        ("epochs", 101, "100"),
        ("batch_size", 4097, "4096"),
        ("adapter_dim", 513, "512"),
        ("random_seed", 2**32, str(2**32 - 1)),
    ],
)
def test_every_numeric_override_has_an_upper_bound_named_when_exceeded(
    field: str, value: int, bound: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        RunOverrides.model_validate({field: value})
    [error] = refused.value.errors()
    assert error["loc"] == (field,)
    assert bound in error["msg"]


def test_at_most_16_candidates_may_be_requested() -> None:
    many = [{"model_name": f"org/model-{n}", "gpus": 64} for n in range(40)]
    with pytest.raises(ValidationError, match="at most 16 items"):
        RunOverrides.model_validate({"candidates": many})
    assert len(RunOverrides.model_validate({"candidates": many[:16]}).candidates or ()) == 16


def test_overrides_at_their_bounds_are_accepted() -> None:
    RunOverrides(
        limit=1_000_000,
        min_total_records=1_000_000,
        eval_size=10_000,
        icl_max_examples=64,
        epochs=100,
        batch_size=4096,
        adapter_dim=512,
        random_seed=2**32 - 1,
    )


def test_every_override_field_documents_its_bound() -> None:
    schema = RunOverrides.model_json_schema()["properties"]
    for name in ("limit", "eval_size", "icl_max_examples", "epochs", "batch_size", "adapter_dim"):
        [number] = [option for option in schema[name]["anyOf"] if option["type"] == "integer"]
        assert "maximum" in number
        assert f"at most {number['maximum']:,}" in schema[name]["description"]
    assert schema["candidates"]["anyOf"][0]["maxItems"] == 16


@pytest.mark.parametrize("header", ["Authorization", "x-api-key", "Cookie"])
def test_an_external_endpoint_refuses_credentials_in_its_headers(header: str) -> None:
    with pytest.raises(ValidationError, match="carry credentials"):
        ExternalEndpoint(base_url="https://api.example.com/v1", headers={header: "secret"})


def test_an_external_endpoint_refuses_credentials_in_its_url() -> None:
    with pytest.raises(ValidationError, match="must not carry credentials"):
        ExternalEndpoint(base_url="https://user:secret@api.example.com/v1")


def test_an_external_candidate_sends_its_endpoints_model_id_and_cannot_be_customized() -> None:
    endpoint = ExternalEndpoint(base_url="http://127.0.0.1:8080/v1", model="qwen2.5-0.5b")
    candidate = CandidateConfig(model_name="qwen/qwen2.5-coder-0.5b", endpoint=endpoint)
    assert (candidate.external, candidate.served_model) == (True, "qwen2.5-0.5b")
    assert CandidateConfig(model_name="org/m").served_model == "org/m"
    with pytest.raises(ValidationError, match="cannot be customized"):
        CandidateConfig(
            model_name="qwen/qwen2.5-coder-0.5b",
            endpoint=endpoint,
            customization_enabled=True,
            customization_target="qwen/qwen2.5-coder-0.5b@1",
        )
