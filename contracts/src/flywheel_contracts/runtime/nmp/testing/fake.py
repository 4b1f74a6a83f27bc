"""RecordedNmp: an in-memory NMP that answers with the shapes recorded in nmp-contract.md.

For unit tests of the client and of services: it keeps just enough state (what exists, how often
a job was polled) to answer real call sequences the way NMP does (409 or DMS's 500 text on
duplicates, 404 after a delete, ``pending`` -> ``ready`` deployments, ``created`` -> ``running``
-> ``completed`` jobs). It computes nothing: scores, answers and vectors are canned.
"""

import base64
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

from ..settings import NmpSettings

Handler = Callable[[httpx.Request, dict[str, str]], httpx.Response]

JUDGE_MODEL = "meta/llama-3.3-70b-instruct"
EMBEDDING_MODEL = "nvidia/llama-3.2-nv-embedqa-1b-v2"
EMBEDDING_DIM = 2048
CHAT_ANSWER = "recorded answer"

# Successive answers of a status poll (the last one repeats), as in nmp-contract.md §4.3-4.5.
DEPLOYMENT_STATES = ("pending", "ready")
CUSTOMIZATION_STATES: tuple[dict[str, object], ...] = (
    {"status": "created", "percentage_done": 0, "epochs_completed": 0, "steps_completed": 0},
    {"status": "running", "percentage_done": 50.0, "epochs_completed": 1, "steps_completed": 50},
    {"status": "completed", "percentage_done": 100, "epochs_completed": 2, "steps_completed": 100},
)
EVALUATION_STATES: tuple[dict[str, object], ...] = (
    {"status": "created", "status_details": {"progress": None}},
    # NMP's wait for evaluation workers: a caller that takes it for an ending fails every job.
    {"status": "pending", "status_details": {"progress": None}},
    {"status": "running", "status_details": {"progress": 50.0}},
    {"status": "completed", "status_details": {"progress": 100}},
)
GENERIC_RESULTS: dict[str, object] = {
    "llm-as-judge": {"metrics": {"llm-judge": {"scores": {"similarity": {"value": 0.85}}}}}
}
TOOL_CALLING_RESULTS: dict[str, object] = {
    "custom-tool-calling": {
        "metrics": {
            "tool-calling-accuracy": {
                "scores": {
                    "function_name_accuracy": {"value": 0.9},
                    "function_name_and_args_accuracy": {"value": 0.7},
                }
            },
            "correctness": {"scores": {"rating": {"value": 0.8}}},
        }
    }
}


def _json(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


def _missing(what: str) -> httpx.Response:
    return _json(404, {"detail": f"{what} not found"})


def _conflict(what: str) -> httpx.Response:
    return _json(409, {"detail": f"{what} already exists"})


@dataclass
class _Job:
    body: dict[str, object]
    polls: int = 0
    cancelled: bool = False


@dataclass
class _State:
    namespaces: set[tuple[str, str]] = field(default_factory=set)  # (store, namespace)
    datasets: dict[str, dict[str, object]] = field(default_factory=dict)  # "ns/name" -> entity
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)  # "ns/name" -> files
    configs: set[str] = field(default_factory=set)
    customizations: dict[str, _Job] = field(default_factory=dict)
    evaluations: dict[str, _Job] = field(default_factory=dict)
    deployments: dict[str, _Job] = field(default_factory=dict)  # "ns/name" -> job
    models: set[str] = field(default_factory=set)  # Entity Store models (customized outputs)
    served: set[str] = field(default_factory=lambda: {JUDGE_MODEL, EMBEDDING_MODEL})
    counter: int = 0


class RecordedNmp:
    """``httpx.MockTransport(RecordedNmp().handle)`` stands in for the three NMP hosts."""

    def __init__(self, settings: NmpSettings | None = None) -> None:
        settings = settings or NmpSettings()
        self.state = _State()
        self._hosts = {
            urlsplit(settings.nemo_base_url).netloc: "nemo",
            urlsplit(settings.nim_base_url).netloc: "nim",
            urlsplit(settings.datastore_base_url).netloc: "datastore",
        }
        name = r"(?P<ns>[^/]+)/(?P<name>[^/]+)"
        routes: list[tuple[str, str, str, Handler]] = [
            ("nemo", "POST", r"/v1/namespaces", self._entity_namespace),
            ("nemo", "POST", r"/v1/datasets", self._create_dataset),
            ("nemo", "GET", rf"/v1/datasets/{name}", self._get_dataset),
            ("nemo", "PATCH", rf"/v1/datasets/{name}", self._update_dataset),
            ("nemo", "DELETE", rf"/v1/datasets/{name}", self._delete_dataset),
            ("nemo", "POST", r"/v1/customization/configs", self._create_config),
            ("nemo", "DELETE", rf"/v1/customization/configs/{name}", self._delete_config),
            ("nemo", "POST", r"/v1/customization/jobs", self._create_customization),
            ("nemo", "GET", r"/v1/customization/jobs/(?P<id>[^/]+)/status", self._customization),
            ("nemo", "GET", r"/v1/customization/jobs", self._list_customizations),
            ("nemo", "POST", r"/v1/customization/jobs/(?P<id>[^/]+)/cancel", self._cancel),
            ("nemo", "GET", r"/v1/models/(?P<model>.+)", self._get_model),
            ("nemo", "DELETE", r"/v1/models/(?P<model>.+)", self._delete_model),
            ("nemo", "POST", r"/v1/evaluation/jobs", self._create_evaluation),
            ("nemo", "GET", r"/v1/evaluation/jobs/(?P<id>[^/]+)", self._evaluation),
            ("nemo", "GET", r"/v1/evaluation/jobs/(?P<id>[^/]+)/results", self._results),
            ("nemo", "POST", r"/v1/evaluation/jobs/(?P<id>[^/]+)/cancel", self._cancel_evaluation),
            ("nemo", "GET", r"/v1/evaluation/jobs/(?P<id>[^/]+)/download-results", self._zip),
            ("nemo", "DELETE", r"/v1/evaluation/jobs/(?P<id>[^/]+)", self._delete_evaluation),
            ("nemo", "POST", r"/v1/deployment/model-deployments", self._deploy),
            ("nemo", "GET", rf"/v1/deployment/model-deployments/{name}", self._deployment),
            ("nemo", "DELETE", rf"/v1/deployment/model-deployments/{name}", self._undeploy),
            ("nim", "GET", r"/v1/models", self._served_models),
            ("nim", "POST", r"/v1/embeddings", self._embeddings),
            ("nim", "POST", r"/v1/chat/completions", self._chat),
            ("datastore", "POST", r"/v1/datastore/namespaces", self._datastore_namespace),
            ("datastore", "POST", r"/v1/hf/api/repos/create", self._create_repo),
            ("datastore", "DELETE", r"/v1/hf/api/repos/delete", self._delete_repo),
            ("datastore", "POST", rf"/v1/hf/api/datasets/{name}/preupload/main", self._preupload),
            ("datastore", "POST", rf"/v1/hf/api/datasets/{name}/commit/main", self._commit),
            ("datastore", "GET", rf"/v1/hf/datasets/{name}/resolve/main/(?P<path>.+)", self._file),
        ]
        self._routes = [(h, m, re.compile(p), fn) for h, m, p, fn in routes]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        host = self._hosts.get(request.url.netloc.decode())
        path = request.url.path  # decoded, as a server's router sees it
        for route_host, method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if route_host == host and method == request.method and match:
                return handler(request, match.groupdict())
        return _json(404, {"detail": f"no route {request.method} {request.url}"})

    def _next_id(self, prefix: str) -> str:
        self.state.counter += 1
        return f"{prefix}-{self.state.counter:06d}"

    # --- namespaces ---------------------------------------------------------------------------

    def _namespace(self, store: str, namespace: str) -> httpx.Response:
        if (store, namespace) in self.state.namespaces:
            return _conflict(f"namespace {namespace}")
        self.state.namespaces.add((store, namespace))
        return _json(201, {"id": namespace})

    def _entity_namespace(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        return self._namespace("entity", json.loads(request.content)["id"])

    def _datastore_namespace(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        return self._namespace("datastore", dict(parse_qsl(request.content.decode()))["namespace"])

    # --- Entity Store datasets and models -----------------------------------------------------

    def _create_dataset(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        key = f"{body['namespace']}/{body['name']}"
        if key in self.state.datasets:
            return _conflict(f"dataset {key}")
        self.state.datasets[key] = {**body, "id": self._next_id("dataset")}
        return _json(201, self.state.datasets[key])

    def _get_dataset(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        entity = self.state.datasets.get(f"{p['ns']}/{p['name']}")
        return _json(200, entity) if entity else _missing("dataset")

    def _update_dataset(self, request: httpx.Request, p: dict[str, str]) -> httpx.Response:
        key = f"{p['ns']}/{p['name']}"
        if key not in self.state.datasets:
            return _missing("dataset")
        self.state.datasets[key].update(json.loads(request.content))
        return _json(200, self.state.datasets[key])

    def _delete_dataset(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        found = self.state.datasets.pop(f"{p['ns']}/{p['name']}", None)
        return httpx.Response(204) if found else _missing("dataset")

    def _get_model(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        model = p["model"]
        if model not in self.state.models:
            return _missing(f"model {model}")
        namespace, name = model.split("/", 1)
        return _json(200, {"name": name, "namespace": namespace})

    def _delete_model(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        model = p["model"]
        if model not in self.state.models:
            return _missing(f"model {model}")
        self.state.models.discard(model)
        self.state.served.discard(model)
        return _json(200, {"message": f"model {model} deleted"})

    # --- Customizer ---------------------------------------------------------------------------

    def _create_config(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        key = f"{body['namespace']}/{body['name']}"
        if key in self.state.configs:
            return _conflict(f"config {key}")
        self.state.configs.add(key)
        return _json(200, body)

    def _delete_config(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        key = f"{p['ns']}/{p['name']}"
        if key not in self.state.configs:
            return _missing(f"config {key}")
        self.state.configs.discard(key)
        return _json(200, {"message": f"config {key} deleted"})

    def _create_customization(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        if body["config"] not in self.state.configs:
            return _json(422, {"detail": f"config {body['config']} not found"})
        job_id = self._next_id("cust")
        output_model = f"{body['output_model']}@{job_id}"
        self.state.customizations[job_id] = _Job({**body, "output_model": output_model})
        return _json(200, self._customization_view(job_id))

    def _customization_view(self, job_id: str) -> dict[str, object]:
        job = self.state.customizations[job_id]
        fields = ("config", "dataset", "hyperparameters", "namespace", "custom_fields")
        status = "cancelled" if job.cancelled else "created"
        echoed = {key: job.body[key] for key in fields if key in job.body}
        return {**echoed, "id": job_id, "output_model": job.body["output_model"], "status": status}

    def _list_customizations(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        """One page of at most ``page_size`` jobs, NMP-style; a page past the end is empty."""
        params = request.url.params
        namespace = params.get("filter[namespace]")
        ids = [
            job_id
            for job_id, job in self.state.customizations.items()
            if namespace is None or job.body.get("namespace", "default") == namespace
        ]
        page, size = int(params.get("page", 1)), int(params.get("page_size", 10))
        chosen = ids[(page - 1) * size : page * size]
        pagination = {"page": page, "page_size": size, "total_pages": -(-len(ids) // size)}
        data = [self._customization_view(job_id) for job_id in chosen]
        return _json(200, {"object": "list", "data": data, "pagination": pagination})

    def _customization(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        job = self.state.customizations.get(p["id"])
        if job is None:
            return _missing("customization job")
        if job.cancelled:
            return _json(200, {**CUSTOMIZATION_STATES[0], "status": "cancelled", "status_logs": []})
        state = CUSTOMIZATION_STATES[min(job.polls, len(CUSTOMIZATION_STATES) - 1)]
        job.polls += 1
        if state["status"] == "completed":
            self.state.models.add(str(job.body["output_model"]))
            self.state.served.add(str(job.body["output_model"]))
        return _json(200, {**state, "status_logs": [{"detail": None, "message": "ok"}]})

    def _cancel(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        job = self.state.customizations.get(p["id"])
        if job is None:
            return _missing("customization job")
        job.cancelled = True
        return _json(200, self._customization_view(p["id"]))

    # --- Evaluator ----------------------------------------------------------------------------

    def _create_evaluation(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        job_id = self._next_id("eval")
        self.state.evaluations[job_id] = _Job(json.loads(request.content))
        return _json(200, {"id": job_id, "status": "created"})

    def _evaluation(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        job = self.state.evaluations.get(p["id"])
        if job is None:
            return _missing("evaluation job")
        if job.cancelled:
            return _json(200, {"id": p["id"], "status": "cancelled"})
        state = EVALUATION_STATES[min(job.polls, len(EVALUATION_STATES) - 1)]
        job.polls += 1
        return _json(200, {"id": p["id"], **state})

    def _cancel_evaluation(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        job = self.state.evaluations.get(p["id"])
        if job is None:
            return _missing("evaluation job")
        job.cancelled = True
        return _json(200, {"id": p["id"], "status": "cancelled"})

    def _task_results(self, job_id: str) -> dict[str, object] | None:
        job = self.state.evaluations.get(job_id)
        if job is None:
            return None
        config = job.body["config"]
        tasks = config.get("tasks", {}) if isinstance(config, dict) else {}
        return TOOL_CALLING_RESULTS if "custom-tool-calling" in tasks else GENERIC_RESULTS

    def _results(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        tasks = self._task_results(p["id"])
        return _json(200, {"job": p["id"], "tasks": tasks}) if tasks else _missing("results")

    def _zip(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        tasks = self._task_results(p["id"])
        if tasks is None:
            return _missing("results")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("results.json", json.dumps({"tasks": tasks}))
        return httpx.Response(
            200, content=buffer.getvalue(), headers={"Content-Type": "application/zip"}
        )

    def _delete_evaluation(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        found = self.state.evaluations.pop(p["id"], None)
        return _json(200, {"message": "deleted"}) if found else _missing("evaluation job")

    # --- Deployment Management ----------------------------------------------------------------

    def _deploy(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        key = f"{body['namespace']}/{body['name']}"
        if key in self.state.deployments:
            # What DMS really answers to a duplicate name (nmp-contract.md M1).
            return _json(500, {"detail": "model deployment already exists"})
        self.state.deployments[key] = _Job(body)
        return _json(200, {"deployment_id": self._next_id("deployment"), **body})

    def _deployment(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        job = self.state.deployments.get(f"{p['ns']}/{p['name']}")
        if job is None:
            return _missing("deployment")
        status = DEPLOYMENT_STATES[min(job.polls, len(DEPLOYMENT_STATES) - 1)]
        job.polls += 1
        if status == "ready":
            self.state.served.add(_deployed_model(job))
        return _json(200, {**job.body, "status_details": {"status": status}})

    def _undeploy(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        job = self.state.deployments.pop(f"{p['ns']}/{p['name']}", None)
        if job is None:
            return _missing("deployment")
        self.state.served.discard(_deployed_model(job))
        return _json(200, {"message": "Deployment deleted"})

    # --- NIM proxy ----------------------------------------------------------------------------

    def _served_models(self, _: httpx.Request, __: dict[str, str]) -> httpx.Response:
        data = [{"id": model, "object": "model"} for model in sorted(self.state.served)]
        return _json(200, {"object": "list", "data": data})

    def _embeddings(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(text)}
            for i, text in enumerate(body["input"])
        ]
        return _json(200, {"object": "list", "model": body["model"], "data": data})

    def _chat(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        model = json.loads(request.content)["model"]
        if model not in self.state.served:
            return _missing(f"model {model}")
        message = {"role": "assistant", "content": CHAT_ANSWER}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        return _json(
            200,
            {
                "id": self._next_id("chat"),
                "object": "chat.completion",
                "model": model,
                "choices": [choice],
                "usage": usage,
            },
        )

    # --- Data Store ---------------------------------------------------------------------------

    def _create_repo(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        key = f"{body['organization']}/{body['name']}"
        if key in self.state.repos:
            return _conflict(f"repo {key}")
        self.state.repos[key] = {}
        return _json(200, {"url": f"datasets/{key}"})

    def _delete_repo(self, request: httpx.Request, _: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        found = self.state.repos.pop(f"{body['organization']}/{body['name']}", None)
        return _json(200, {}) if found is not None else _missing("repo")

    def _preupload(self, request: httpx.Request, p: dict[str, str]) -> httpx.Response:
        if f"{p['ns']}/{p['name']}" not in self.state.repos:
            return _missing("repo")
        files = json.loads(request.content)["files"]
        verdicts = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
        ]
        return _json(200, {"files": verdicts})

    def _commit(self, request: httpx.Request, p: dict[str, str]) -> httpx.Response:
        key = f"{p['ns']}/{p['name']}"
        if key not in self.state.repos:
            return _missing("repo")
        for line in request.content.decode().splitlines():
            entry = json.loads(line)
            if entry["key"] == "file":
                value = entry["value"]
                self.state.repos[key][value["path"]] = base64.b64decode(value["content"])
        oid = hashlib.sha1(request.content).hexdigest()
        return _json(200, {"commitUrl": "", "commitOid": oid})

    def _file(self, _: httpx.Request, p: dict[str, str]) -> httpx.Response:
        content = self.state.repos.get(f"{p['ns']}/{p['name']}", {}).get(unquote(p["path"]))
        return httpx.Response(200, content=content) if content is not None else _missing("file")


def _deployed_model(job: _Job) -> str:
    config = job.body["config"]
    return str(config["model"]) if isinstance(config, dict) else ""


def _vector(text: str) -> list[float]:
    """A unit-free but stable vector: the same text always embeds the same way."""
    seed = hashlib.sha256(text.encode()).digest()
    return [seed[i % len(seed)] / 255 for i in range(EMBEDDING_DIM)]
