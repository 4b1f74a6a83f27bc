"""`flywheel run`'s options map onto RunOverrides, with the contract's validation."""

import click
import pytest

from flywheel_contracts.cli.overrides import OVERRIDE_OPTIONS, build_overrides, parse_candidate
from flywheel_contracts.run_config import EvalType, ExampleSelection, RunOverrides

pytestmark = pytest.mark.unit

_TARGET = "meta/llama-3.2-1b-instruct@2.0"


def test_every_override_has_an_option() -> None:
    covered = {option.field for option in OVERRIDE_OPTIONS} | {"candidates"}
    assert covered == set(RunOverrides.model_fields)


def test_unset_options_override_nothing() -> None:
    values = {option.field: None for option in OVERRIDE_OPTIONS} | {"eval_types": ()}
    assert build_overrides(values, (), None) == RunOverrides()


def test_values_reach_their_fields() -> None:
    overrides = build_overrides(
        {
            "eval_size": 10,
            "random_seed": 7,
            "learning_rate": 0.001,
            "example_selection": "semantic_similarity",
            "eval_types": ("base", "icl"),
        },
        (),
        None,
    )
    assert overrides.eval_size == 10
    assert overrides.random_seed == 7
    assert overrides.learning_rate == 0.001
    assert overrides.example_selection is ExampleSelection.SEMANTIC_SIMILARITY
    assert overrides.eval_types == (EvalType.BASE, EvalType.ICL)


def test_a_value_out_of_bounds_names_its_option() -> None:
    with pytest.raises(click.UsageError, match="--eval-size: Input should be greater"):
        build_overrides({"eval_size": 0}, (), None)


def test_candidate_spec_sets_fields() -> None:
    candidate = parse_candidate("meta/llama-3.2-1b-instruct,gpus=2,price-per-1k-tokens=0.5")
    assert candidate.model_name == "meta/llama-3.2-1b-instruct"
    assert candidate.gpus == 2
    assert candidate.price_per_1k_tokens == 0.5
    assert not candidate.customization_enabled


def test_a_customization_target_turns_customization_on() -> None:
    candidate = parse_candidate(f"meta/llama-3.2-1b-instruct,customization_target={_TARGET}")
    assert candidate.customization_enabled
    assert candidate.customization_target == _TARGET


def test_no_customize_wins_over_the_target() -> None:
    spec = f"meta/llama-3.2-1b-instruct,customization_target={_TARGET}"
    overrides = build_overrides({}, (spec, "meta/llama-3.1-8b-instruct"), False)
    assert overrides.candidates is not None
    assert [c.customization_enabled for c in overrides.candidates] == [False, False]


def test_customize_needs_a_target() -> None:
    with pytest.raises(click.UsageError, match="customization_enabled requires"):
        build_overrides({}, ("meta/llama-3.1-8b-instruct",), True)


def test_customize_needs_candidates() -> None:
    with pytest.raises(click.UsageError, match="--candidate"):
        build_overrides({}, (), True)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("meta/m,gpus", "expected FIELD=VALUE"),
        ("meta/m,colour=red", "expected FIELD=VALUE"),
        ("meta/m,model_name=x", "expected FIELD=VALUE"),
        ("meta/m,gpus=0", "gpus: Input should be greater"),
        ("bad name", "model_name: String should match"),
    ],
)
def test_bad_candidate_specs_are_usage_errors(spec: str, problem: str) -> None:
    with pytest.raises(click.UsageError, match=problem):
        parse_candidate(spec)


def test_a_candidate_given_twice_is_refused_before_the_run_starts() -> None:
    with pytest.raises(click.UsageError, match="meta/m given more than once"):
        build_overrides({}, ("meta/m,gpus=1", "meta/x", "meta/m"), None)


def test_a_candidate_spec_names_an_external_endpoint_by_its_fields() -> None:
    candidate = parse_candidate(
        "qwen/qwen2.5-coder-0.5b,endpoint.base_url=http://127.0.0.1:8080/v1,"
        "endpoint.api_key=local,price_per_1k_output_tokens=0.0004"
    )
    assert candidate.endpoint is not None
    assert str(candidate.endpoint.base_url) == "http://127.0.0.1:8080/v1"
    assert candidate.endpoint.api_key == "local"
    assert candidate.price_per_1k_output_tokens == 0.0004
    assert not candidate.customization_enabled


def test_an_external_candidate_cannot_be_customized() -> None:
    with pytest.raises(click.UsageError, match="cannot be customized"):
        parse_candidate(
            "qwen/qwen2.5-coder-0.5b,endpoint.base_url=http://127.0.0.1:8080/v1,"
            "customization_target=qwen/qwen2.5-coder-0.5b@1"
        )
