"""How responses are read: declared fields, tolerated extras, the helpers callers use."""

import pytest

from flywheel_contracts.runtime.nmp import (
    CustomizationStatus,
    EvaluationResults,
    EvaluationStatus,
    ModelList,
)

pytestmark = pytest.mark.unit


def test_customization_failure_detail_is_the_last_non_empty_one() -> None:
    status = CustomizationStatus.model_validate(
        {
            "status": "failed",
            "percentage_done": "12.5",
            "status_logs": [
                {"detail": "first problem"},
                {"detail": "out of memory", "message": "Failed"},
                {"detail": "", "message": "NotEnoughResources"},
            ],
            "unknown_field": 1,
        }
    )
    assert status.error_detail == "out of memory"
    assert status.waiting_for_resources
    assert status.percentage_done == 12.5
    assert status.model_extra == {"unknown_field": 1}


def test_customization_without_logs() -> None:
    status = CustomizationStatus.model_validate({"status": "running"})
    assert status.error_detail is None
    assert not status.waiting_for_resources


@pytest.mark.parametrize(
    ("body", "progress"),
    [
        ({"status": "created"}, 0.0),
        ({"status": "created", "status_details": {"progress": None}}, 0.0),
        ({"status": "running", "status_details": {"progress": 42.5}}, 42.5),
    ],
)
def test_evaluation_progress_defaults_to_zero(body: dict[str, object], progress: float) -> None:
    assert EvaluationStatus.model_validate(body).progress == progress


def test_evaluation_scores_by_path() -> None:
    results = EvaluationResults.model_validate(
        {
            "tasks": {
                "custom-tool-calling": {
                    "metrics": {
                        "tool-calling-accuracy": {
                            "scores": {"function_name_accuracy": {"value": 0.9, "stats": {}}}
                        }
                    }
                }
            }
        }
    )
    assert (
        results.score("custom-tool-calling", "tool-calling-accuracy", "function_name_accuracy")
        == 0.9
    )
    with pytest.raises(KeyError, match="custom-tool-calling/correctness/rating"):
        results.score("custom-tool-calling", "correctness", "rating")


def test_model_list_ids() -> None:
    models = ModelList.model_validate({"object": "list", "data": [{"id": "a"}, {"id": "b@c"}]})
    assert models.ids == {"a", "b@c"}
