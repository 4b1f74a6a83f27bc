"""Fixtures of the integration suites: a sandbox on the shared servers (unique topics, database
and NMP namespace, removed afterwards), blueprint-format training data from generated traffic,
and a publisher of input events on the sandbox's topics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from flywheel_contracts.runtime import KafkaSettings, Publisher
from flywheel_contracts.traffic import ROUTER, TrafficConfig, generate_records
from flywheel_customizer.testing.stack import Sandbox
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_nmp_emulator.testing import Splits, split, tool_call_records, training_record

Record = dict[str, Any]


@pytest.fixture(scope="session")
def router_splits() -> Splits:
    records = tool_call_records(
        list(generate_records(300, seed=7, config=TrafficConfig((ROUTER,))))
    )
    return split(records, eval_size=10, val_ratio=0.1, seed=7)


@pytest.fixture(scope="session")
def training_files(router_splits: Splits) -> dict[str, list[Record]]:
    """The train dataset's files as the datasets service uploads them (blueprint format)."""
    return {
        "training/train_data.jsonl": [training_record(r) for r in router_splits.train],
        "validation/val_data.jsonl": [training_record(r) for r in router_splits.val],
    }


@pytest.fixture
def sandbox(stack: StackHandle) -> Iterator[Sandbox]:
    box = Sandbox.new(
        kafka_bootstrap=stack.kafka_bootstrap, mongo_url=stack.mongo_url, nmp_url=stack.nmp_url
    )
    yield box
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(box.mongo_url) as mongo:
        mongo.drop_database(box.database)
    admin = AdminClient({"bootstrap.servers": box.kafka_bootstrap})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(box.prefix)]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=10).values():
            future.result()


@pytest.fixture
async def publisher(sandbox: Sandbox) -> AsyncIterator[Publisher]:
    kafka = KafkaSettings(bootstrap_servers=sandbox.kafka_bootstrap, topic_prefix=sandbox.prefix)
    producer = Publisher(kafka, client_id="customizer-tests")
    producer.start()
    yield producer
    await producer.close()
