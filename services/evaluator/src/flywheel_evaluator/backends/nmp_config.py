"""NeMo Evaluator job configs for an evaluation (built by the contracts' shared builders, with
this service's rubrics), and the reading of their results (nmp-contract.md 5.2)."""

from typing import Any

from flywheel_contracts.run_config import WorkloadType
from flywheel_contracts.runtime.nmp import EvaluationResults
from flywheel_contracts.runtime.nmp.evaluation_configs import (
    GENERIC_TASK,
    TOOL_CALLING_TASK,
    generic_config,
    tool_calling_config,
)
from flywheel_contracts.runtime.nmp.names import dataset_files_url
from flywheel_evaluator.judging import SIMILARITY_RUBRIC, TOOL_CALL_RUBRIC
from flywheel_evaluator.models import EvaluationJob
from flywheel_evaluator.scoring import (
    CORRECTNESS,
    FUNCTION_NAME,
    FUNCTION_NAME_AND_ARGS,
    SIMILARITY,
)

# Where each of our metrics sits in NMP's results: (task, metric, score).
RESULT_PATHS: dict[str, tuple[str, str, str]] = {
    FUNCTION_NAME: (TOOL_CALLING_TASK, "tool-calling-accuracy", "function_name_accuracy"),
    FUNCTION_NAME_AND_ARGS: (
        TOOL_CALLING_TASK,
        "tool-calling-accuracy",
        "function_name_and_args_accuracy",
    ),
    CORRECTNESS: (TOOL_CALLING_TASK, "correctness", "rating"),
    SIMILARITY: (GENERIC_TASK, "llm-judge", "similarity"),
}


def _dataset(job: EvaluationJob, file_name: str) -> dict[str, Any]:
    files_url = dataset_files_url(job.dataset.namespace, job.dataset.name, file_name)
    return {"files_url": files_url, "limit": job.limit}


def evaluation_config(job: EvaluationJob, judge: str, file_name: str) -> dict[str, Any]:
    """E1's `config` for the job's workload type."""
    dataset = _dataset(job, file_name)
    if job.workload_type is WorkloadType.TOOL_CALLING:
        return tool_calling_config(dataset, judge, TOOL_CALL_RUBRIC)
    return generic_config(dataset, judge, SIMILARITY_RUBRIC)


def scored_count(results: EvaluationResults, metric: str) -> int | None:
    """How many records NMP scored for `metric`, when its results say (`stats.count`)."""
    task, name, score = RESULT_PATHS[metric]
    found = results.tasks[task].metrics[name].scores[score]
    stats = (found.model_extra or {}).get("stats")
    count = stats.get("count") if isinstance(stats, dict) else None
    return count if isinstance(count, int) else None
