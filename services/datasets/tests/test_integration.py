"""Acceptance 3, against the real stack and the NMP emulator: `run.requested` for generated
traffic ends in `dataset.ready` whose files download back from the emulator and match the
counts; an unknown workload ends in `dataset.failed`; a repeated request builds nothing twice;
a cancellation that comes first stops the run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import pytest_asyncio
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from flywheel_contracts.envelope import new_event
from flywheel_contracts.events import (
    DatasetFailed,
    DatasetFailureReason,
    DatasetReady,
    RunCancelled,
)
from flywheel_contracts.run_config import WorkloadType
from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_contracts.runtime.publisher import Publisher
from flywheel_contracts.runtime.testing import eventually, running
from flywheel_contracts.traffic import (
    DEFAULT_MODEL,
    ORDER_TOOLS,
    TrafficConfig,
    generate_records,
)
from flywheel_datasets.app import create_service
from flywheel_datasets.clients.elasticsearch import ElasticsearchRecords
from flywheel_datasets.clients.nmp import NmpDatasets
from flywheel_datasets.config import DatasetsSettings, ElasticsearchSettings
from flywheel_datasets.formats import EVAL_FILE, TRAIN_FILE, VAL_FILE
from flywheel_datasets.ports import RecordQuery
from flywheel_datasets.repository import COLLECTION
from flywheel_datasets.selection import LoggedRecord
from flywheel_datasets.service import dataset_names
from flywheel_ingest.documents import canonical_json, document_id
from flywheel_localstack.pytest_plugin import StackHandle
from services.datasets.tests.stack_helpers import (
    Outcomes,
    delete_index,
    index_records,
    run_requested,
    settings_for,
    started_publisher,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CLIENT = "acme-support"
RECORDS = 800


@dataclass
class Running:
    settings: DatasetsSettings
    publisher: Publisher
    outcomes: Outcomes
    nmp: NmpClient
    created: list[tuple[str, uuid.UUID]]

    async def request(self, workload: str = ORDER_TOOLS, **overrides: Any) -> uuid.UUID:
        envelope = run_requested(workload, CLIENT, **overrides)
        await self.publisher.publish(envelope)
        assert envelope.run_id is not None
        self.created.append((workload, envelope.run_id))
        return envelope.run_id


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def service(stack: StackHandle) -> AsyncIterator[Running]:
    index = unique("t-datasets-")
    settings = settings_for(
        kafka_bootstrap=stack.kafka_bootstrap,
        mongo_url=stack.mongo_url,
        elasticsearch_url=stack.elasticsearch_url,
        nmp_url=stack.nmp_url,
        index=index,
        prefix=unique("t") + ".",
        database=unique("datasets_"),
        namespace=unique("t"),
    )
    kit, _ = create_service(settings)
    running_service: Running | None = None
    try:
        traffic = generate_records(
            RECORDS, 5, TrafficConfig(workloads=(ORDER_TOOLS,), timestamp_format="iso")
        )
        await index_records(stack.elasticsearch_url, index, traffic)
        async with running(kit):
            publisher = await started_publisher(settings.kafka)
            outcomes = Outcomes(settings.kafka)
            async with NmpClient(settings.nmp) as nmp:
                running_service = Running(settings, publisher, outcomes, nmp, [])
                yield running_service
                datasets = NmpDatasets(nmp)
                for workload, run_id in running_service.created:
                    for name in dataset_names(workload, run_id).values():
                        await datasets.delete(name)
            outcomes.close()
            await publisher.close()
    finally:
        await delete_index(stack.elasticsearch_url, index)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url)
        await mongo.drop_database(settings.mongo.database)
        await mongo.close()


def _lines(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.split(b"\n")] if data else []


async def test_a_run_gets_datasets_that_download_back_and_match_the_counts(
    service: Running,
) -> None:
    run_id = await service.request(eval_size=30, random_seed=3)
    envelope = await service.outcomes.of(run_id)
    assert isinstance(envelope.payload, DatasetReady), envelope.payload
    ready = envelope.payload
    context, counts, stats = ready.context, ready.counts, ready.stats
    assert context.workload_type is WorkloadType.TOOL_CALLING
    assert context.config.workload_id == ORDER_TOOLS
    assert context.config.split.random_seed == 3
    assert 0 < stats.selected <= stats.fetched <= RECORDS
    assert stats.fetched == sum(stats.rules.values()) + stats.selected
    # The production baseline, from the generated traffic itself (usage and latency logged).
    baseline = ready.baseline
    assert baseline is not None
    assert [m.model for m in baseline.models] == [DEFAULT_MODEL]
    assert baseline.model == "meta/llama-3.3-70b-instruct"
    assert baseline.records == stats.selected + stats.leaked
    assert baseline.records_with_usage == baseline.records_with_latency == baseline.records
    assert baseline.prompt_tokens_per_request and baseline.completion_tokens_per_request
    assert baseline.latency_p50_ms is not None and baseline.latency_p95_ms is not None
    assert 0 < baseline.latency_p50_ms <= baseline.latency_p95_ms
    # A few minutes of traffic: under a day, so the volume is the records read.
    assert baseline.requests_per_day == stats.fetched

    store = service.nmp.data_store
    refs = context.datasets
    names = dataset_names(ORDER_TOOLS, run_id)
    assert (refs.eval.name, refs.icl.name, refs.train.name) == (
        names["eval"],
        names["icl"],
        names["train"],
    )
    assert refs.eval.files_url == f"hf://datasets/{service.settings.nmp.namespace}/{names['eval']}"
    evaluation = _lines(await store.download_file(refs.eval.name, EVAL_FILE))
    icl = _lines(await store.download_file(refs.icl.name, EVAL_FILE))
    train = _lines(await store.download_file(refs.train.name, TRAIN_FILE))
    val = _lines(await store.download_file(refs.train.name, VAL_FILE))
    assert (len(evaluation), len(icl), len(train), len(val)) == (
        counts.eval,
        counts.icl,
        counts.train,
        counts.val,
    )
    assert counts.eval == 30
    assert all(r["workload_id"] == ORDER_TOOLS for r in evaluation)
    assert all(record["tools"] and record["messages"][-1]["tool_calls"] for record in train)
    assert (
        "For example, if the conversation looks like this:"
        in icl[0]["request"]["messages"][0]["content"]
    )
    registered = await service.nmp.entity_store.dataset_files_url(refs.train.name)
    assert registered == refs.train.files_url


async def test_a_repeated_request_builds_nothing_twice(service: Running) -> None:
    run_id = await service.request(eval_size=10)
    first = await service.outcomes.of(run_id)
    assert isinstance(first.payload, DatasetReady)
    # The same run requested again, with a new event id: nothing is rebuilt or re-announced.
    await service.publisher.publish(run_requested(ORDER_TOOLS, CLIENT, run_id=run_id, eval_size=10))
    await service.outcomes.drain(3.0)
    assert [e.event_id for e in service.outcomes.for_run(run_id)] == [first.event_id]
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        service.settings.mongo.url.get_secret_value()
    )
    job = await mongo[service.settings.mongo.database][COLLECTION].find_one({"_id": str(run_id)})
    await mongo.close()
    assert job is not None
    assert (job["status"], job["attempts"]) == ("done", 1)


async def test_an_unknown_workload_fails_with_that_reason(service: Running) -> None:
    run_id = await service.request(workload="no-such-workload")
    envelope = await service.outcomes.of(run_id)
    assert isinstance(envelope.payload, DatasetFailed)
    assert envelope.payload.reason is DatasetFailureReason.NOT_ENOUGH_RECORDS
    assert "no records for workload 'no-such-workload'" in envelope.payload.message


async def test_a_cancellation_before_the_request_stops_the_run(service: Running) -> None:
    run_id = uuid.uuid4()
    await service.publisher.publish(new_event(RunCancelled(), producer="cli", run_id=run_id))
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        service.settings.mongo.url.get_secret_value()
    )
    jobs = mongo[service.settings.mongo.database][COLLECTION]

    async def tombstoned() -> bool:
        return await jobs.find_one({"_id": str(run_id)}) is not None

    await eventually(tombstoned, timeout_s=30)
    await mongo.close()
    await service.publisher.publish(run_requested(ORDER_TOOLS, CLIENT, run_id=run_id))
    service.created.append((ORDER_TOOLS, run_id))
    envelope = await service.outcomes.of(run_id)
    assert isinstance(envelope.payload, DatasetFailed)
    assert envelope.payload.reason is DatasetFailureReason.CANCELLED


async def test_an_index_nobody_wrote_to_reads_as_no_records(stack: StackHandle) -> None:
    settings = ElasticsearchSettings(
        url=SecretStr(stack.elasticsearch_url), index=unique("t-datasets-missing-")
    )
    records = ElasticsearchRecords(settings)
    try:
        query = RecordQuery(ORDER_TOOLS, CLIENT, until=datetime.now(UTC))
        assert [page async for page in records.pages(query)] == []
    finally:
        await records.close()


async def test_records_stored_with_or_without_a_tools_fingerprint_read_back_as_logged(
    stack: StackHandle,
) -> None:
    index = unique("t-datasets-mixed-")
    traffic = list(generate_records(300, 7, TrafficConfig(timestamp_format="iso")))
    records = ElasticsearchRecords(
        ElasticsearchSettings(url=SecretStr(stack.elasticsearch_url), index=index, page_size=40)
    )
    try:
        # One index, as after an upgrade: records ingest stored before and after fingerprints.
        await index_records(stack.elasticsearch_url, index, traffic[::2])
        await index_records(stack.elasticsearch_url, index, traffic[1::2], fingerprinted=False)
        read: dict[str, dict[str, Any]] = {}
        for workload in {record["workload_id"] for record in traffic}:
            query = RecordQuery(workload, traffic[0]["client_id"], until=datetime.now(UTC))
            read |= {logged.doc_id: logged.source async for logged in _each(records, query)}
    finally:
        await records.close()
        await delete_index(stack.elasticsearch_url, index)
    assert any("tools" in record["request"] for record in traffic)
    assert any("tools" not in record["request"] for record in traffic)
    assert read == {document_id(canonical_json(record)): record for record in traffic}


async def _each(records: ElasticsearchRecords, query: RecordQuery) -> AsyncIterator[LoggedRecord]:
    async for page in records.pages(query):
        for logged in page:
            yield logged
