"""NeMo Evaluator job configs for an evaluation (built by the contracts' shared builders, with
this service's rubrics), and the reading of their results (nmp-contract.md 5.2).

A remote judge (`judge.base_url` or `judge.api_key` set) is named by its `api_endpoint`, key
included, as NeMo Evaluator wants it: the config is sent to NMP and nowhere else (never logged,
never on an event), and an NMP error that echoes it has the key masked (`masking`)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import SecretStr

from flywheel_contracts.run_config import WorkloadType
from flywheel_contracts.runtime.nmp import EvaluationResults, NmpError
from flywheel_contracts.runtime.nmp.evaluation_configs import (
    GENERIC_TASK,
    TOOL_CALLING_TASK,
    Judge,
    generic_config,
    judge_endpoint,
    tool_calling_config,
)
from flywheel_contracts.runtime.nmp.names import dataset_files_url
from flywheel_contracts.runtime.nmp.nim import openai_base_url
from flywheel_evaluator.config import EvaluatorSettings
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


MASK = "**********"


def judge_model(settings: EvaluatorSettings, model: str | None) -> Judge:
    """The judge as the job config names it: `model` (else `judge.model`) served by NMP, or, when
    a base URL or key is configured, its `api_endpoint` with the URL and the key."""
    model_id = model or settings.judge.model
    judge = settings.judge
    secret = settings.judge_key()
    if judge.base_url is None and secret is None:
        return model_id
    url = f"{openai_base_url(settings.judge_base_url)}/chat/completions"
    key = secret.get_secret_value() if secret is not None else None
    return judge_endpoint(url, model_id, key)


def mask(text: str, secret: SecretStr | None) -> str:
    """`text` with every occurrence of the secret replaced by a mask."""
    if secret is None or not secret.get_secret_value():
        return text
    return text.replace(secret.get_secret_value(), MASK)


@contextmanager
def masking(secret: SecretStr | None) -> Iterator[None]:
    """An NmpError raised in the block comes out with the secret masked in its message and body
    (NMP may echo a refused config), without the original chained to it."""
    try:
        yield
    except NmpError as exc:
        if secret is None or secret.get_secret_value() not in f"{exc} {exc.body}":
            raise
        masked = type(exc)(
            mask(str(exc), secret),
            method=exc.method,
            url=exc.url,
            status_code=exc.status_code,
            body=mask(exc.body, secret),
        )
        raise masked from None


def evaluation_config(job: EvaluationJob, judge: Judge, file_name: str) -> dict[str, Any]:
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
