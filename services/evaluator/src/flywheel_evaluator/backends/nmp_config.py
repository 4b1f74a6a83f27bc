"""NeMo Evaluator job configs as the blueprint sends them (nmp-contract.md 4.4), and the
reading of their results (5.2).

One deliberate difference: the similarity score's parser is `(\\d+)`, not the blueprint's `(\\d)`,
which reads a "10" as 1.
"""

from typing import Any

from flywheel_contracts.run_config import WorkloadType
from flywheel_contracts.runtime.nmp import EvaluationResults
from flywheel_contracts.runtime.nmp.names import dataset_files_url
from flywheel_evaluator.judging import SIMILARITY_RUBRIC, TOOL_CALL_RUBRIC
from flywheel_evaluator.models import EvaluationJob
from flywheel_evaluator.scoring import (
    CORRECTNESS,
    FUNCTION_NAME,
    FUNCTION_NAME_AND_ARGS,
    SIMILARITY,
)

TOOL_CALLING_TASK = "custom-tool-calling"
GENERIC_TASK = "llm-as-judge"

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

_SIMILARITY_PROMPT = (
    "TASK / QUESTION:\n{{item.request.messages}}\n---\n"
    "REFERENCE ANSWER:\n{{item.response.choices[0].message.content}}\n---\n"
    "CANDIDATE ANSWER:\n{{sample.output_text}}\n---"
)


def _dataset(job: EvaluationJob, file_name: str) -> dict[str, Any]:
    files_url = dataset_files_url(job.dataset.namespace, job.dataset.name, file_name)
    return {"files_url": files_url, "limit": job.limit}


def _tool_calling(job: EvaluationJob, judge: str, file_name: str) -> dict[str, Any]:
    return {
        "type": "custom",
        "tasks": {
            TOOL_CALLING_TASK: {
                "type": "chat-completion",
                "dataset": _dataset(job, file_name),
                "params": {
                    "template": {
                        "messages": "{{ item.request.messages | tojson }}",
                        "tools": "{{ item.request.tools | tojson }}",
                        "tool_choice": "required",
                    }
                },
                "metrics": {
                    "tool-calling-accuracy": {
                        "type": "tool-calling",
                        "params": {
                            "model": judge,
                            "tool_calls_ground_truth": (
                                "{{ item.response.choices[0].message.tool_calls | tojson }}"
                            ),
                        },
                    },
                    "correctness": {
                        "type": "llm-judge",
                        "params": {
                            "model": judge,
                            "template": {
                                "messages": [
                                    {"role": "system", "content": TOOL_CALL_RUBRIC},
                                    {
                                        "role": "user",
                                        "content": (
                                            "*Ground Truth*: "
                                            "{{item.response.choices[0].message.tool_calls}}\n"
                                            "*Prediction*: "
                                            "{{sample.response.choices[0].message.tool_calls}}"
                                        ),
                                    },
                                ]
                            },
                            "scores": {
                                "rating": {
                                    "type": "int",
                                    "parser": {"type": "regex", "pattern": "RATING:\\s*(\\d+)"},
                                }
                            },
                        },
                    },
                },
            }
        },
    }


def _generic(job: EvaluationJob, judge: str, file_name: str) -> dict[str, Any]:
    return {
        "type": "custom",
        "tasks": {
            GENERIC_TASK: {
                "type": "chat-completion",
                "dataset": _dataset(job, file_name),
                "params": {"template": {"messages": "{{ item.request.messages | tojson }}"}},
                "metrics": {
                    "llm-judge": {
                        "type": "llm-judge",
                        "params": {
                            "model": judge,
                            "template": {
                                "messages": [
                                    {"role": "system", "content": SIMILARITY_RUBRIC},
                                    {"role": "user", "content": _SIMILARITY_PROMPT},
                                ]
                            },
                            "scores": {
                                "similarity": {
                                    "type": "int",
                                    "parser": {"type": "regex", "pattern": "(\\d+)"},
                                }
                            },
                        },
                    }
                },
            }
        },
    }


def evaluation_config(job: EvaluationJob, judge: str, file_name: str) -> dict[str, Any]:
    """E1's `config` for the job's workload type."""
    if job.workload_type is WorkloadType.TOOL_CALLING:
        return _tool_calling(job, judge, file_name)
    return _generic(job, judge, file_name)


def scored_count(results: EvaluationResults, metric: str) -> int | None:
    """How many records NMP scored for `metric`, when its results say (`stats.count`)."""
    task, name, score = RESULT_PATHS[metric]
    found = results.tasks[task].metrics[name].scores[score]
    stats = (found.model_extra or {}).get("stats")
    count = stats.get("count") if isinstance(stats, dict) else None
    return count if isinstance(count, int) else None
