"""What NMP runs, as NVIDIA's official SDK (`nemo-microservices`, a test dependency) lists it:
an oracle independent of our own client for tests that must prove nothing was left behind."""

import re
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, NotRequired, Required, Union, get_args, get_origin

from nemo_microservices import AsyncNeMoMicroservices
from nemo_microservices.types import (
    dataset_create_params,
    dataset_update_params,
    embedding_create_params,
    namespace_create_params,
)
from nemo_microservices.types.chat import completion_create_params as chat
from nemo_microservices.types.customization import CustomizationJobListFilterParam
from nemo_microservices.types.customization import config_create_params as customization_configs
from nemo_microservices.types.customization import job_create_params as customization_job_params
from nemo_microservices.types.deployment import model_deployment_create_params as deployments
from nemo_microservices.types.evaluation import EvaluationJobFilterParam
from nemo_microservices.types.evaluation import job_create_params as evaluation_jobs
from pydantic import TypeAdapter, ValidationError
from typing_extensions import get_type_hints, is_typeddict

from flywheel_contracts.runtime.nmp.jobs import ENDED_JOB_STATUSES

# A deleted deployment leaves the list; of those listed, only these hold no GPUs.
_DEPLOYMENT_ENDED = frozenset({"failed", "cancelled", "completed"})


@dataclass(frozen=True)
class LiveResource:
    kind: str
    """"deployment", "customization" or "evaluation"."""
    ref: str
    """A deployment's ``ns/name``, a job's id."""
    namespace: str | None
    status: str | None


async def live_resources(base_url: str, namespace: str | None = None) -> list[LiveResource]:
    """Deployments and jobs that still hold something, in `namespace` or in any namespace,
    every page read through the SDK's auto-pager."""
    deployments: dict[str, str] = {}  # the SDK types this filter as a bare object
    customizations = CustomizationJobListFilterParam()
    evaluations = EvaluationJobFilterParam()
    if namespace:
        deployments["namespace"] = namespace
        customizations["namespace"] = namespace
        evaluations["namespace"] = namespace
    live: list[LiveResource] = []
    async with AsyncNeMoMicroservices(base_url=base_url, max_retries=2) as sdk:
        async for deployment in sdk.deployment.model_deployments.list(filter=deployments):
            status = deployment.status_details.status if deployment.status_details else None
            if status not in _DEPLOYMENT_ENDED:
                ref = f"{deployment.namespace}/{deployment.name}"
                live.append(LiveResource("deployment", ref, deployment.namespace, status))
        async for job in sdk.customization.jobs.list(filter=customizations):
            if job.status not in ENDED_JOB_STATUSES:
                live.append(LiveResource("customization", str(job.id), job.namespace, job.status))
        async for evaluation in sdk.evaluation.jobs.list(filter=evaluations):
            if evaluation.status not in ENDED_JOB_STATUSES:
                ref = str(evaluation.id)
                live.append(
                    LiveResource("evaluation", ref, evaluation.namespace, evaluation.status)
                )
    return live


async def customization_jobs(base_url: str, namespace: str) -> list[dict[str, object]]:
    """Every customization job of `namespace`, ended or not, as NMP answers them."""
    async with AsyncNeMoMicroservices(base_url=base_url, max_retries=2) as sdk:
        return [
            job.model_dump(mode="json")
            async for job in sdk.customization.jobs.list(filter={"namespace": namespace})
        ]


# --- Request bodies against the SDK's parameter types ----------------------------------------

_PARAMS: list[tuple[str, re.Pattern[str], Any]] = [
    (method, re.compile(pattern), params)
    for method, pattern, params in (
        ("POST", r"/v1/namespaces", namespace_create_params.NamespaceCreateParams),
        ("POST", r"/v1/datasets", dataset_create_params.DatasetCreateParams),
        ("PATCH", r"/v1/datasets/[^/]+/[^/]+", dataset_update_params.DatasetUpdateParams),
        ("POST", r"/v1/customization/configs", customization_configs.ConfigCreateParams),
        ("POST", r"/v1/customization/jobs", customization_job_params.JobCreateParams),
        ("POST", r"/v1/customization/jobs/[^/]+/cancel", None),
        ("POST", r"/v1/evaluation/jobs", evaluation_jobs.JobCreateParams),
        ("POST", r"/v1/evaluation/jobs/[^/]+/cancel", None),
        ("POST", r"/v1/deployment/model-deployments", deployments.ModelDeploymentCreateParams),
        ("POST", r"/v1/chat/completions", chat.CompletionCreateParamsNonStreaming),
        ("POST", r"/v1/embeddings", embedding_create_params.EmbeddingCreateParams),
    )
]
# Parameters the SDK puts into the URL, never into the body, although its params type lists them.
_IN_PATH: dict[Any, frozenset[str]] = {
    dataset_update_params.DatasetUpdateParams: frozenset({"namespace"}),
}
# Fields whose SDK type no server accepts: SDK 1.5.0 types chat `tools` as a list of strings,
# where the NIM proxy (like every OpenAI-compatible server) takes OpenAI's function objects.
# Their keys are still checked; their values are not held to that type.
_SDK_ERRATA: dict[Any, frozenset[str]] = {
    chat.CompletionCreateParamsNonStreaming: frozenset({"tools"}),
}


def request_problems(method: str, path: str, body: object) -> list[str]:
    """What is wrong with a request body by the SDK's request parameter types: an unknown
    route, a field the SDK does not know, a required one missing, a value of the wrong type.
    Empty when the body is one the SDK itself could have sent."""
    found = [p for m, pattern, p in _PARAMS if m == method and pattern.fullmatch(path)]
    if not found:
        return [f"{method} {path}: no such call in the SDK"]
    params = found[0]
    if params is None:
        return [] if body in (None, {}) else [f"{method} {path}: the SDK sends no body"]
    in_path = _IN_PATH.get(params, frozenset())
    problems = [f"{method} {path}: {p}" for p in _shape(body, params, "", in_path)]
    if isinstance(body, dict):
        # What the SDK takes from the URL is there, as far as the body's type check goes.
        errata = _SDK_ERRATA.get(params, frozenset())
        body = {
            **{key: "from-the-path" for key in in_path},
            **{key: value for key, value in body.items() if key not in errata},
        }
    try:
        TypeAdapter(params).validate_python(body)
    except ValidationError as exc:
        problems += [f"{method} {path}: {e['loc']}: {e['msg']}" for e in exc.errors()]
    return problems


def _shape(
    value: object, kind: Any, where: str, in_path: frozenset[str] = frozenset()
) -> list[str]:
    """Unknown and missing keys, key by key, through nested TypedDicts, lists and unions."""
    kind = _unannotated(kind)
    if is_typeddict(kind):
        if not isinstance(value, dict):
            return []  # the type check reports it
        hints = {name: hint for name, hint in _hints(kind).items() if name not in in_path}
        fields = {_wire_name(name, hint): hint for name, hint in hints.items()}
        required = {_wire_name(name, hints[name]) for name in kind.__required_keys__ & set(hints)}
        problems = [f"{where}.{key}: unknown to the SDK" for key in value if key not in fields]
        problems += [f"{where}.{key}: required, missing" for key in required if key not in value]
        for key, item in value.items():
            if key in fields:
                problems += _shape(item, fields[key], f"{where}.{key}")
        return problems
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, UnionType):
        members = [_shape(value, member, where) for member in args]
        return min(members, key=len) if members else []
    if origin is not None and isinstance(value, list) and args:
        return [p for i, item in enumerate(value) for p in _shape(item, args[0], f"{where}[{i}]")]
    if origin is not None and isinstance(value, dict) and len(args) == 2:
        return [p for k, item in value.items() for p in _shape(item, args[1], f"{where}.{k}")]
    return []


def _hints(kind: Any) -> dict[str, Any]:
    hints: dict[str, Any] = get_type_hints(kind, include_extras=True)
    return hints


def _unannotated(kind: Any) -> Any:
    while get_origin(kind) in (Annotated, Required, NotRequired):
        kind = get_args(kind)[0]
    return kind


def _wire_name(name: str, hint: Any) -> str:
    """The SDK renames some fields on the wire (``PropertyInfo(alias=...)``)."""
    while get_origin(hint) in (Annotated, Required, NotRequired):
        if get_origin(hint) is Annotated:
            for meta in get_args(hint)[1:]:
                alias = getattr(meta, "alias", None)
                if isinstance(alias, str):
                    return alias
        hint = get_args(hint)[0]
    return name
