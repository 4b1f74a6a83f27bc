"""NeMo Evaluator job configs as the blueprint sends them (nmp-contract.md 4.4), one builder per
workload type. Callers choose the dataset reference and the judge's rubrics, so the evaluator and
the emulator's tests send the same shapes.

One deliberate difference: the similarity score's parser is `(\\d+)`, not the blueprint's `(\\d)`,
which reads a "10" as 1.

The judge is a model name NMP serves, or a remote endpoint as NeMo Evaluator takes it
(`judge_endpoint`: `{"api_endpoint": {"url", "model_id", "api_key"}}`). Such a config carries the
key: callers must never log it or put it on an event.
"""

from collections.abc import Mapping
from typing import Any

Judge = str | Mapping[str, Any]
"""A judge model: its name, or `{"api_endpoint": {...}}` (`judge_endpoint`)."""


def judge_endpoint(url: str, model_id: str, api_key: str | None = None) -> dict[str, Any]:
    """A remote judge as NeMo Evaluator's model `api_endpoint` (url = the chat completions URL)."""
    endpoint: dict[str, Any] = {"url": url, "model_id": model_id}
    if api_key is not None:
        endpoint["api_key"] = api_key
    return {"api_endpoint": endpoint}


def _model(judge: Judge) -> str | dict[str, Any]:
    """The judge as one metric's `params.model` (a fresh copy per metric)."""
    if isinstance(judge, str):
        return judge
    return {
        key: dict(value) if isinstance(value, Mapping) else value for key, value in judge.items()
    }


TOOL_CALLING_TASK = "custom-tool-calling"
GENERIC_TASK = "llm-as-judge"

_MESSAGES = "{{ item.request.messages | tojson }}"
_TOOL_CALL_PROMPT = (
    "*Ground Truth*: {{item.response.choices[0].message.tool_calls}}\n"
    "*Prediction*: {{sample.response.choices[0].message.tool_calls}}"
)
_SIMILARITY_PROMPT = (
    "TASK / QUESTION:\n{{item.request.messages}}\n---\n"
    "REFERENCE ANSWER:\n{{item.response.choices[0].message.content}}\n---\n"
    "CANDIDATE ANSWER:\n{{sample.output_text}}\n---"
)


def _judged(judge: Judge, rubric: str, prompt: str, score: str, pattern: str) -> dict[str, Any]:
    """An llm-judge metric: `rubric` as the system message, an integer `score` read by `pattern`."""
    return {
        "type": "llm-judge",
        "params": {
            "model": _model(judge),
            "template": {
                "messages": [
                    {"role": "system", "content": rubric},
                    {"role": "user", "content": prompt},
                ]
            },
            "scores": {score: {"type": "int", "parser": {"type": "regex", "pattern": pattern}}},
        },
    }


def tool_calling_config(dataset: Mapping[str, Any], judge: Judge, rubric: str) -> dict[str, Any]:
    """Tool-calling accuracy (function names, names and arguments) and the judge's 0/1 rating."""
    params = {
        "template": {
            "messages": _MESSAGES,
            "tools": "{{ item.request.tools | tojson }}",
            "tool_choice": "required",
        }
    }
    metrics = {
        "tool-calling-accuracy": {
            "type": "tool-calling",
            "params": {
                "model": _model(judge),
                "tool_calls_ground_truth": (
                    "{{ item.response.choices[0].message.tool_calls | tojson }}"
                ),
            },
        },
        "correctness": _judged(judge, rubric, _TOOL_CALL_PROMPT, "rating", "RATING:\\s*(\\d+)"),
    }
    return _custom(TOOL_CALLING_TASK, dataset, params, metrics)


def generic_config(dataset: Mapping[str, Any], judge: Judge, rubric: str) -> dict[str, Any]:
    """The judge's 1-10 similarity of each answer to the production one."""
    metrics = {"llm-judge": _judged(judge, rubric, _SIMILARITY_PROMPT, "similarity", "(\\d+)")}
    return _custom(GENERIC_TASK, dataset, {"template": {"messages": _MESSAGES}}, metrics)


def _custom(
    task: str, dataset: Mapping[str, Any], params: dict[str, Any], metrics: dict[str, Any]
) -> dict[str, Any]:
    """A custom config of one chat-completion task over `dataset`."""
    return {
        "type": "custom",
        "tasks": {
            task: {
                "type": "chat-completion",
                "dataset": dict(dataset),
                "params": params,
                "metrics": metrics,
            }
        },
    }
