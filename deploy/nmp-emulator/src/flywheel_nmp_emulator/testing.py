"""Helpers for tests that drive the emulator: an in-process client, dataset upload through the
Data Store API, the blueprint's dataset formats (eval / ICL / train) and evaluation configs.

The formats follow reference/blueprint.md (3.5-3.7, 4.4) closely enough for the emulator's
models to see what they would see in a real run; services own the production versions.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import random
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from flywheel_contracts.runtime.nmp import evaluation_configs
from flywheel_contracts.runtime.testing import ServiceProcess
from flywheel_nmp_emulator.app import create_app
from flywheel_nmp_emulator.config import Settings
from flywheel_nmp_emulator.models.embeddings import embed
from flywheel_nmp_emulator.models.examples import last_user_text

Record = dict[str, Any]
ICL_SYSTEM_HEADER = (
    "You are a helpful assistant that answers by calling the right tool.\n"
    "Here are some examples of how you should respond to the user."
)
TOOL_CALL_RUBRIC = (
    "You judge a tool call against the ground truth. Rate 0 if the prediction is null, empty or "
    "invalid, if the function name differs, if the arguments are not a JSON object, or if any "
    "argument of the ground truth is missing or different (identifiers exactly, free text by "
    "meaning). Otherwise rate 1.\nAnswer as:\nRATING: <0 or 1>\nEXPLANATION: <why>"
)
SIMILARITY_RUBRIC = (
    "Rate from 1 to 10 how close the candidate answer is to the reference answer in meaning: "
    "10 nearly identical, 1 irrelevant or empty. Reply with the integer only."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def emulator_service(
    state_file: Path,
    port: int,
    gpus: int = 4,
    deploy_seconds: float = 0.0,
    extra_env: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """`python -m flywheel_nmp_emulator` on 127.0.0.1:port with its state in `state_file`, for
    a test to start, kill and start again where it left off; `extra_env` sets further
    `NMP_EMULATOR_*` settings (e.g. NMP_EMULATOR_HOSTED_API_KEY)."""
    env = {
        "NMP_EMULATOR_HOST": "127.0.0.1",
        "NMP_EMULATOR_STATE_FILE": str(state_file),
        "NMP_EMULATOR_GPUS": str(gpus),
        "NMP_EMULATOR_DEPLOY_SECONDS": str(deploy_seconds),
        **(extra_env or {}),
    }
    log = state_file.with_suffix(".log")
    return ServiceProcess(
        "flywheel_nmp_emulator", "NMP_EMULATOR_", env, log, port=port, port_setting="PORT"
    )


@contextmanager
def emulator_process(
    state_file: Path,
    port: int,
    gpus: int = 4,
    deploy_seconds: float = 0.0,
    ready_within_s: float = 30.0,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[httpx.Client]:
    """`emulator_service` started for the block (stopped with SIGTERM), and a client of it."""
    process = emulator_service(state_file, port, gpus, deploy_seconds, extra_env)
    process.start(ready_within_s)
    try:
        with httpx.Client(base_url=process.url, timeout=10) as client:
            yield client
    finally:
        process.stop()


@asynccontextmanager
async def in_process(settings: Settings | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a fresh emulator app in this process (lifespan included)."""
    app = create_app(settings or Settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nmp-emulator") as client:
            yield client


def jsonl(records: Sequence[Record]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


async def upload_dataset(
    client: httpx.AsyncClient, namespace: str, name: str, files: dict[str, Sequence[Record]]
) -> str:
    """Create the repo, upload each file (preupload + NDJSON commit), register it; the files_url."""
    repo = {"name": name, "organization": namespace, "type": "dataset"}
    created = await client.post("/v1/hf/api/repos/create", json=repo)
    assert created.status_code in (200, 409), created.text
    for path, records in files.items():
        data = jsonl(records)
        api = f"/v1/hf/api/datasets/{namespace}/{name}"
        sample = base64.b64encode(data[:512]).decode()
        pre = await client.post(
            f"{api}/preupload/main",
            json={"files": [{"path": path, "sample": sample, "size": len(data)}]},
        )
        assert pre.status_code == 200, pre.text
        lines = [
            {"key": "header", "value": {"summary": f"Upload {path}", "description": ""}},
            {
                "key": "file",
                "value": {
                    "content": base64.b64encode(data).decode(),
                    "path": path,
                    "encoding": "base64",
                },
            },
        ]
        body = "\n".join(json.dumps(line) for line in lines)
        done = await client.post(
            f"{api}/commit/main", content=body, headers={"Content-Type": "application/x-ndjson"}
        )
        assert done.status_code == 200, done.text
    files_url = f"hf://datasets/{namespace}/{name}"
    registration = {
        "name": name,
        "namespace": namespace,
        "description": "",
        "files_url": files_url,
        "project": "flywheel",
    }
    registered = await client.post("/v1/datasets", json=registration)
    if registered.status_code == 409:
        # NMP's PATCH body has no name/namespace (they are the path): send only the update.
        update = {k: v for k, v in registration.items() if k not in ("name", "namespace")}
        registered = await client.patch(f"/v1/datasets/{namespace}/{name}", json=update)
    assert registered.status_code in (200, 201), registered.text
    return files_url


@dataclass(frozen=True)
class Splits:
    eval: list[Record]
    train: list[Record]
    val: list[Record]


def tool_call_records(records: Sequence[Record]) -> list[Record]:
    """Records whose response calls tools, deduplicated by their user messages (blueprint 3.4)."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for record in records:
        if not record["response"]["choices"][0]["message"].get("tool_calls"):
            continue
        key = tuple(
            str(m.get("content")) for m in record["request"]["messages"] if m.get("role") == "user"
        )
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept


def split(records: Sequence[Record], eval_size: int, val_ratio: float, seed: int) -> Splits:
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    rest, evaluation = shuffled[eval_size:], shuffled[:eval_size]
    n_val = int(len(rest) * val_ratio)
    return Splits(eval=evaluation, train=rest[n_val:], val=rest[:n_val])


def training_record(record: Record) -> Record:
    """Blueprint format_training_data: request messages + the response message, plus tools."""
    message = dict(record["response"]["choices"][0]["message"])
    message["content"] = ""
    out: Record = {"messages": [*record["request"]["messages"], message]}
    if record["request"].get("tools"):
        out["tools"] = record["request"]["tools"]
    return out


def _example_text(record: Record) -> str:
    text = "For example, if the conversation looks like this:\n"
    for message in record["request"]["messages"]:
        if message.get("role") != "system":
            text += f"{message['role']}: {message.get('content')}\n\n"
    answer = record["response"]["choices"][0]["message"]
    text += (
        "\nThen you'll respond with:\n"
        + f"{answer.get('role', 'assistant')}: {answer.get('content')}"
    )
    if answer.get("tool_calls"):
        text += "\nTool calls:\n" + json.dumps(answer["tool_calls"], indent=2)
    return text


def icl_records(
    evaluation: Sequence[Record], train: Sequence[Record], examples: int = 3
) -> list[Record]:
    """Blueprint ICL injection with semantic selection: each eval record gets the train records
    whose last user message is nearest to its own, injected into the system message."""
    if not train:
        return [copy.deepcopy(r) for r in evaluation]
    dim = 2048
    pool = embed([last_user_text(r["request"]["messages"]) for r in train], dim)
    out = []
    for record in evaluation:
        query = embed([last_user_text(record["request"]["messages"])], dim)[0]
        nearest = np.argsort(-(pool @ query), kind="stable")[:examples]
        block = "\n\n".join(_example_text(train[i]) for i in nearest)
        copied = copy.deepcopy(record)
        messages = copied["request"]["messages"]
        if messages and messages[0].get("role") == "system":
            messages[0]["content"] = f"{ICL_SYSTEM_HEADER}\n\n{block}\n\n{messages[0]['content']}"
        else:
            messages.insert(0, {"role": "system", "content": f"{ICL_SYSTEM_HEADER}\n\n{block}"})
        out.append(copied)
    return out


def _eval_dataset(files_url: str, limit: int | None) -> Record:
    dataset: Record = {"files_url": f"{files_url}/eval_data.jsonl"}
    if limit is not None:
        dataset["limit"] = limit
    return dataset


def tool_calling_config(files_url: str, judge: str, limit: int | None = None) -> Record:
    """The blueprint's TOOL_CALLING_METRIC evaluation config (contract 4.4)."""
    return evaluation_configs.tool_calling_config(
        _eval_dataset(files_url, limit), judge, TOOL_CALL_RUBRIC
    )


def generic_config(files_url: str, judge: str, limit: int | None = None) -> Record:
    """The blueprint's generic (llm-as-judge similarity) evaluation config (contract 4.4)."""
    return evaluation_configs.generic_config(
        _eval_dataset(files_url, limit), judge, SIMILARITY_RUBRIC
    )


def deployment_body(model: str, gpus: int = 1, namespace: str = "dfwbp") -> Record:
    return {
        "name": model.replace("/", "-"),
        "namespace": namespace,
        "config": {
            "model": model,
            "nim_deployment": {
                "image_name": f"nvcr.io/nim/{model}",
                "image_tag": "1.8.3",
                "pvc_size": "25Gi",
                "gpu": gpus,
                "additional_envs": {"NIM_GUIDED_DECODING_BACKEND": "outlines"},
            },
        },
    }


def customization_config(
    base_model: str, namespace: str = "dfwbp", gpus: int = 1, name: str | None = None
) -> Record:
    """A customization config as the SDK's ConfigCreateParams requires it (max_seq_length and
    every required training option field)."""
    return {
        "name": name or f"{base_model.split('/', 1)[-1]}@v1.0.0+dfw",
        "namespace": namespace,
        "target": f"{base_model}@2.0",
        "training_options": [
            {
                "training_type": "sft",
                "finetuning_type": "lora",
                "num_gpus": gpus,
                "num_nodes": 1,
                "micro_batch_size": 1,
            }
        ],
        "training_precision": "bf16-mixed",
        "max_seq_length": 8192,
    }


def hyperparameters(epochs: int = 2, batch_size: int = 16) -> Record:
    return {
        "training_type": "sft",
        "finetuning_type": "lora",
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": 0.0001,
        "lora": {"adapter_dim": 32, "adapter_dropout": 0.1},
    }


async def start_customization(
    client: httpx.AsyncClient,
    base_model: str,
    output_model: str,
    train: Sequence[Record],
    *,
    dataset: str = "train",
    epochs: int = 2,
    batch_size: int = 16,
) -> Record:
    """Upload `train` as dataset `dfwbp/<dataset>`, create a config for `base_model` and a
    customization job training `output_model` on it; the created job."""
    await upload_dataset(client, "dfwbp", dataset, {"training/train_data.jsonl": train})
    config = customization_config(base_model)
    assert (await client.post("/v1/customization/configs", json=config)).status_code == 200
    created = await client.post(
        "/v1/customization/jobs",
        json={
            "namespace": "dfwbp",
            "output_model": output_model,
            "config": f"dfwbp/{config['name']}",
            "dataset": {"name": dataset, "namespace": "dfwbp"},
            "hyperparameters": hyperparameters(epochs=epochs, batch_size=batch_size),
        },
    )
    assert created.status_code == 200, created.text
    job: Record = created.json()
    return job


async def poll(
    client: httpx.AsyncClient, path: str, done: Callable[[Record], bool], within_s: float = 30.0
) -> Record:
    """GET path until done(body) holds; the last body. TimeoutError after within_s seconds."""
    async with asyncio.timeout(within_s):
        while True:
            response = await client.get(path)
            response.raise_for_status()
            body: Record = response.json()
            if done(body):
                return body
            await asyncio.sleep(0.02)
