"""Configuration resolution: defaults file + the request's overrides, validated."""

from pathlib import Path
from uuid import UUID

import pytest
import yaml

from flywheel_contracts.events import RunRequested
from flywheel_contracts.run_config import CandidateConfig, ExampleSelection, RunOverrides
from flywheel_datasets.errors import InvalidRunConfig
from flywheel_datasets.run_defaults import RunDefaults

pytestmark = pytest.mark.unit

RUN_ID = UUID("12345678-9abc-4def-8123-456789abcdef")


def _request(**overrides: object) -> RunRequested:
    return RunRequested(
        workload_id="order-tools",
        client_id="acme",
        overrides=RunOverrides.model_validate(overrides),
    )


def test_the_packaged_defaults_resolve() -> None:
    config = RunDefaults.load().resolve(_request(), RUN_ID)
    assert (config.workload_id, config.client_id) == ("order-tools", "acme")
    names = [c.model_name for c in config.candidates]
    assert names[:2] == ["meta/llama-3.2-1b-instruct", "meta/llama-3.1-8b-instruct"]
    assert config.candidates[0].customization_enabled
    assert all(c.price_per_1k_tokens > 0 for c in config.candidates)


def test_overrides_win_over_the_defaults() -> None:
    candidate = CandidateConfig(model_name="meta/llama-3.2-3b-instruct", gpus=2)
    config = RunDefaults.load().resolve(
        _request(
            eval_size=40, limit=500, example_selection="semantic_similarity", candidates=[candidate]
        ),
        RUN_ID,
    )
    assert config.split.eval_size == 40
    assert config.split.limit == 500
    assert config.icl.example_selection is ExampleSelection.SEMANTIC_SIMILARITY
    assert config.candidates == (candidate,)


def test_a_missing_seed_is_derived_from_the_run_and_recorded() -> None:
    defaults = RunDefaults.load()
    seeded = defaults.resolve(_request(), RUN_ID)
    assert seeded.split.random_seed == 0x12345678
    assert defaults.resolve(_request(), RUN_ID) == seeded
    assert defaults.resolve(_request(random_seed=3), RUN_ID).split.random_seed == 3


def test_overrides_that_contradict_the_defaults_name_the_problem() -> None:
    with pytest.raises(
        InvalidRunConfig, match=r"overrides are invalid: .*eval_size must be below limit"
    ):
        RunDefaults.load().resolve(_request(eval_size=20, limit=20, min_total_records=10), RUN_ID)


def test_a_broken_defaults_file_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "defaults.yaml"
    path.write_text(yaml.safe_dump({"candidates": [], "split": {"eval_size": 0}}))
    with pytest.raises(InvalidRunConfig, match=r"candidates: .*split.eval_size: "):
        RunDefaults.load(path)
    path.write_text("candidates: [")
    with pytest.raises(InvalidRunConfig, match="not valid YAML"):
        RunDefaults.load(path)
    path.write_text(yaml.safe_dump({"workload_id": "w", "candidates": [{"model_name": "a/b"}]}))
    with pytest.raises(InvalidRunConfig, match="workload_id are chosen per run"):
        RunDefaults.load(path)
    with pytest.raises(InvalidRunConfig, match="cannot read"):
        RunDefaults.load(tmp_path / "missing.yaml")
