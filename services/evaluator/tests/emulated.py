"""Integration-test support: a private NMP emulator holding a run's datasets, the deployed
candidate and its trained adapter; evaluator settings isolated by topic prefix and database;
and the trigger events nim-manager and the customizer would publish."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from confluent_kafka import Message

from flywheel_contracts.envelope import Envelope, decode, new_event
from flywheel_contracts.events import (
    CustomizationDone,
    DatasetContext,
    DatasetRef,
    DatasetRefs,
    DeploymentRef,
    EvalDone,
    NimUp,
    RunCancelled,
)
from flywheel_contracts.run_config import (
    CandidateConfig,
    EvalType,
    EvaluationConfig,
    RunConfig,
    SplitConfig,
    WorkloadType,
)
from flywheel_contracts.runtime import KafkaSettings, MongoSettings, Publisher
from flywheel_contracts.runtime.testing import read_topic
from flywheel_contracts.traffic import ROUTER, TrafficConfig, generate_records
from flywheel_evaluator.app import Evaluator, build
from flywheel_evaluator.config import EvaluatorSettings
from flywheel_nmp_emulator.testing import (
    customization_config,
    deployment_body,
    emulator_process,
    free_port,
    hyperparameters,
    icl_records,
    poll,
    split,
    tool_call_records,
    training_record,
    upload_dataset,
)

NS = "dfwbp"
SMALL = "meta/llama-3.2-1b-instruct"
EVAL_SIZE = 120


@dataclass(frozen=True)
class World:
    """What the private emulator holds for the runs of a test module."""

    url: str
    context: DatasetContext
    deployment: DeploymentRef
    customized_model: str

    def with_eval_types(self, *types: EvalType) -> DatasetContext:
        evaluation = EvaluationConfig(eval_types=types)
        config = self.context.config.model_copy(update={"evaluation": evaluation})
        return self.context.model_copy(update={"config": config})


@asynccontextmanager
async def private_world(
    tmp: Path, *, eval_size: int = EVAL_SIZE, generated: int = 1500
) -> AsyncIterator[World]:
    """A private emulator (zero timings) with eval/ICL/train sets from generated router traffic,
    the small candidate deployed and a LoRA adapter trained for it."""
    port = free_port()
    with emulator_process(tmp / "state.json", port, gpus=4):
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield await _populate(client, url, eval_size, generated)


async def _populate(client: httpx.AsyncClient, url: str, eval_size: int, generated: int) -> World:
    records = tool_call_records(
        list(generate_records(generated, seed=11, config=TrafficConfig(workloads=(ROUTER,))))
    )
    splits = split(records, eval_size=eval_size, val_ratio=0.1, seed=3)
    names = {kind: f"flywheel-{kind}-router-it" for kind in ("eval", "icl", "train")}
    refs = {
        "eval": await upload_dataset(client, NS, names["eval"], {"eval_data.jsonl": splits.eval}),
        "icl": await upload_dataset(
            client, NS, names["icl"], {"eval_data.jsonl": icl_records(splits.eval, splits.train)}
        ),
        "train": await upload_dataset(
            client,
            NS,
            names["train"],
            {
                "training/train_data.jsonl": [training_record(r) for r in splits.train],
                "validation/val_data.jsonl": [training_record(r) for r in splits.val],
            },
        ),
    }
    deployed = await client.post("/v1/deployment/model-deployments", json=deployment_body(SMALL))
    assert deployed.status_code == 200, deployed.text
    await poll(
        client,
        f"/v1/deployment/model-deployments/{NS}/{SMALL.replace('/', '-')}",
        lambda b: b["status_details"]["status"] == "ready",
    )
    customized = await _train(client, names["train"])
    datasets = DatasetRefs(
        **{kind: DatasetRef(namespace=NS, name=names[kind], files_url=refs[kind]) for kind in refs}
    )
    candidate = CandidateConfig(
        model_name=SMALL, customization_enabled=True, customization_target=f"{SMALL}@2.0"
    )
    config = RunConfig(
        workload_id="router",
        client_id="it",
        candidates=(candidate,),
        split=SplitConfig(eval_size=eval_size, limit=10_000, min_total_records=50),
    )
    context = DatasetContext(
        datasets=datasets, workload_type=WorkloadType.TOOL_CALLING, config=config
    )
    deployment = DeploymentRef(
        namespace=NS, name=SMALL.replace("/", "-"), base_url=f"{url}/v1", model_id=SMALL
    )
    return World(url, context, deployment, customized)


async def _train(client: httpx.AsyncClient, train_dataset: str) -> str:
    config = customization_config(SMALL, NS)
    assert (await client.post("/v1/customization/configs", json=config)).status_code == 200
    job = await client.post(
        "/v1/customization/jobs",
        json={
            "name": "customization-router-it",
            "output_model": f"{NS}/customized-meta-llama-3.2-1b-instruct",
            "config": f"{NS}/llama-3.2-1b-instruct@v1.0.0+dfw",
            "dataset": {"name": train_dataset, "namespace": NS},
            "namespace": NS,
            "hyperparameters": hyperparameters(epochs=2),
        },
    )
    assert job.status_code == 200, job.text
    job_id, model = job.json()["id"], job.json()["output_model"]
    await poll(
        client, f"/v1/customization/jobs/{job_id}/status", lambda b: b["status"] == "completed"
    )
    await poll(client, "/v1/models", lambda b: model in {m["id"] for m in b["data"]})
    return str(model)


def settings(world: World, kafka: str, mongo: str, **changes: Any) -> EvaluatorSettings:
    """Unique topics and database; zero waits; NMP is the private emulator."""
    tag = uuid.uuid4().hex[:8]
    base: dict[str, Any] = {
        "instance_id": f"evaluator-test-{tag}",
        "kafka": KafkaSettings(bootstrap_servers=kafka, topic_prefix=f"t{tag}."),
        "mongo": MongoSettings(url=mongo, database=f"evaluator_{tag}"),
        "nmp": {
            "nemo_base_url": world.url,
            "nim_base_url": world.url,
            "datastore_base_url": world.url,
            "retry_backoff_s": 0.05,
        },
        "chat": {"concurrency": 16, "backoff_s": 0.05},
        "nmp_backend": {"poll_interval_s": 0.1, "usage_sample": 10},
        "worker": {"poll_interval_s": 0.2, "lease_s": 6.0},
    }
    return EvaluatorSettings.model_validate({**base, **changes})


def nim_up(world: World, run_id: UUID, context: DatasetContext | None = None) -> Envelope[Any]:
    payload = NimUp(
        candidate=world.context.config.candidates[0],
        deployment=world.deployment,
        context=context or world.context,
    )
    return new_event(payload, producer="nim-manager", run_id=run_id)


def customization_done(
    world: World, run_id: UUID, context: DatasetContext | None = None
) -> Envelope[Any]:
    payload = CustomizationDone(
        candidate_model=SMALL,
        job_id="cust-it",
        customized_model=world.customized_model,
        deployment=world.deployment,
        context=context or world.context,
    )
    return new_event(payload, producer="customizer", run_id=run_id)


def run_cancelled(run_id: UUID) -> Envelope[Any]:
    return new_event(RunCancelled(reason="test cancel"), producer="cli", run_id=run_id)


@asynccontextmanager
async def evaluator(
    config: EvaluatorSettings, *, keep_database: bool = False
) -> AsyncIterator[tuple[Evaluator, Publisher]]:
    """A running evaluator, and a publisher for the test's trigger events."""
    service = build(config)
    async with service.running():
        publisher = Publisher(config.kafka, client_id="evaluator-test")
        publisher.start()
        try:
            yield service, publisher
        finally:
            await publisher.close()
            if not keep_database:
                await service.kit.mongo.drop_database(config.mongo.database)


def _decoded(messages: list[Message]) -> Iterator[Envelope[Any]]:
    for message in messages:
        value = message.value()
        if value is not None:
            yield decode(value)


async def events(
    config: EvaluatorSettings, event_type: str, count: int, timeout_s: float = 60
) -> list[Envelope[Any]]:
    """Up to `count` events of `event_type` on the test's topics."""
    topic = config.kafka.topic(event_type)
    messages = await asyncio.to_thread(
        read_topic, config.kafka.bootstrap_servers, topic, count, timeout_s
    )
    return list(_decoded(messages))


async def eval_done(
    config: EvaluatorSettings, count: int, timeout_s: float = 90
) -> dict[EvalType, EvalDone]:
    found = await events(config, EvalDone.EVENT_TYPE, count, timeout_s)
    assert len(found) == count, f"expected {count} eval.done, got {len(found)}"
    by_type = {e.payload.eval_type: e.payload for e in found}
    assert len(by_type) == count, f"an evaluation was reported twice: {found}"
    return by_type
