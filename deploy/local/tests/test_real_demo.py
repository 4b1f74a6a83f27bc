"""`make real-demo`'s pure parts: the run it requests (the real model, customized, three
evaluations), the training curve read from a job's status, the judge note, the emulator's
settings and the trainer venv's name. No server, no download."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel_contracts.events import EvalDone, MetricScore, UsageStats
from flywheel_contracts.run_config import EvalType
from flywheel_localstack.real_model.demo import (
    EMBEDDING_MODEL,
    curve_lines,
    emulator_extra_env,
    judge_note,
    run_overrides,
    training_curve,
)
from flywheel_localstack.real_model.emulator import emulator_env
from flywheel_localstack.real_model.install import SERVED_MODEL, RealModel
from flywheel_localstack.real_model.trainer import venv_name

pytestmark = pytest.mark.unit


def test_the_run_customizes_the_real_model_and_evaluates_it_three_ways() -> None:
    overrides = run_overrides(12, 4e-4)
    (candidate,) = overrides.candidates or ()
    assert candidate.model_name == SERVED_MODEL and candidate.endpoint is None
    assert candidate.customization_enabled
    assert candidate.customization_target == f"{SERVED_MODEL}@2.0"
    assert overrides.eval_types == (EvalType.BASE, EvalType.ICL, EvalType.CUSTOMIZED)
    assert (overrides.eval_size, overrides.learning_rate) == (12, 4e-4)


def test_the_training_curve_comes_from_the_jobs_metrics() -> None:
    status = {
        "metrics": {
            "keys": ["train_loss"],
            "metrics": {"train_loss": [{"step": 1, "value": 0.5}, {"step": 2, "value": 0.25}]},
        }
    }
    curve = training_curve(status)
    assert curve == [(1, 0.5), (2, 0.25)]
    lines = curve_lines(curve, width=10)
    assert lines[0].endswith("#" * 10) and lines[1].endswith("#" * 5)
    assert training_curve({}) == [] and curve_lines([]) == ["(no step reported)"]


def _done(*scores: MetricScore) -> EvalDone:
    return EvalDone(
        candidate_model=SERVED_MODEL,
        eval_type=EvalType.CUSTOMIZED,
        job_id=None,
        target_model=SERVED_MODEL,
        scores=scores,
        usage=UsageStats(
            requests=12,
            latency_p50_ms=1.0,
            latency_p95_ms=2.0,
            prompt_tokens_per_request=2000.0,
            completion_tokens_per_request=30.0,
        ),
    )


def test_a_judged_metric_that_needed_the_judge_is_unavailable() -> None:
    decided = MetricScore(
        name="tool_calling_correctness", value=0.0, n=12, failed=0, ci_low=0.0, ci_high=0.2
    )
    needed = decided.model_copy(update={"failed": 10})
    exact = MetricScore(
        name="function_name_and_args_accuracy", value=0.5, n=12, failed=3, ci_low=0.2, ci_high=0.8
    )
    assert judge_note([_done(decided, exact)]) == []
    (note,) = judge_note([_done(needed)])
    assert "tool_calling_correctness unavailable" in note and "10 of 12 records" in note


def test_the_demos_emulator_serves_no_judge_and_trains(tmp_path: Path) -> None:
    model = RealModel(server=tmp_path / "s", model=tmp_path / "m", llama_cpp_source=tmp_path)
    env = emulator_extra_env(emulator_env(model, tmp_path / "python"), tmp_path / "run", 7)
    assert env["NMP_EMULATOR_ALWAYS_SERVED_MODELS"] == f'["{EMBEDDING_MODEL}"]'
    assert env["NMP_EMULATOR_REAL__MAX_TRAIN_STEPS"] == "7"
    assert env["NMP_EMULATOR_REAL__TRAINER_PYTHON"] == str(tmp_path / "python")
    assert env["NMP_EMULATOR_REAL__LLAMA_CPP_SOURCE"] == str(tmp_path)
    assert "NMP_EMULATOR_REAL__TRAINER_PYTHON" not in emulator_env(model)
    with pytest.raises(ValueError, match=r"llama\.cpp's source"):
        emulator_env(RealModel(server=tmp_path, model=tmp_path), tmp_path / "python")


def test_the_trainer_venv_is_named_after_its_pins_not_its_comments(tmp_path: Path) -> None:
    pins = tmp_path / "requirements.txt"
    pins.write_text("# a comment\ntorch==2.11.0 \\\n    --hash=sha256:aa\n")
    name = venv_name(pins)
    pins.write_text("# another comment\n\ntorch==2.11.0 \\\n    --hash=sha256:aa\n")
    assert venv_name(pins) == name
    pins.write_text("torch==2.12.0 \\\n    --hash=sha256:aa\n")
    assert venv_name(pins) != name
    assert venv_name().startswith("lora-trainer-")
