"""Acceptance 2 and the service's delivery rules, against the real stack (Kafka, Mongo) and a
private NMP emulator: base < ICL < customized in function-name accuracy on generated traffic,
the nmp backend scoring the same workload through the emulator's evaluation API, repeated
triggers never rerunning an evaluation, and run.cancelled ending evaluations as cancelled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from flywheel_contracts.events import EvalDone, EvalErrorKind, EvalProgress, EvalStarted
from flywheel_contracts.run_config import EvalType
from flywheel_contracts.runtime.testing import eventually
from flywheel_evaluator.config import EvaluatorSettings
from flywheel_evaluator.repository import EVALUATIONS, RECORDS

from .emulated import (
    EVAL_SIZE,
    World,
    customization_done,
    eval_done,
    evaluator,
    events,
    nim_up,
    private_world,
    run_cancelled,
    settings,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with private_world(tmp_path_factory.mktemp("emulator")) as w:
        yield w


def accuracy(done: EvalDone, name: str = "function_name_accuracy") -> float:
    return next(s.value for s in done.scores if s.name == name)


async def test_base_icl_customized_order(
    world: World, kafka_bootstrap: str, mongo_url: str
) -> None:
    config = settings(world, kafka_bootstrap, mongo_url)
    run_id = uuid.uuid4()
    async with evaluator(config) as (service, publisher):
        up = nim_up(world, run_id)
        await publisher.publish(up)
        await publisher.publish(customization_done(world, run_id))
        done = await eval_done(config, 3)
        assert all(d.ok for d in done.values()), done
        base, icl, customized = (accuracy(done[t]) for t in EvalType)
        print(
            f"\nfunction-name accuracy: base {base:.3f} < icl {icl:.3f} < customized {customized:.3f}"
        )
        assert base < icl < customized
        for d in done.values():
            names = {s.name for s in d.scores}
            assert names == {
                "function_name_accuracy",
                "function_name_and_args_accuracy",
                "tool_calling_correctness",
                "function_name_accuracy_lenient",
                "function_name_and_args_accuracy_lenient",
            }
            assert all(s.n == EVAL_SIZE for s in d.scores)
            assert d.usage is not None and d.usage.requests > 0
            assert 0 < d.usage.latency_p50_ms <= d.usage.latency_p95_ms
            assert d.usage.tokens_per_request > 0
        assert done[EvalType.CUSTOMIZED].target_model == world.customized_model
        started = await events(config, EvalStarted.EVENT_TYPE, 3)
        assert {e.payload.eval_type for e in started} == set(EvalType)
        progress = await events(config, EvalProgress.EVENT_TYPE, 1)
        assert progress and 0 < progress[0].payload.percent < 100

        # Per-record detail is kept, one document per record and evaluation.
        records = service.kit.db[RECORDS]
        assert await records.count_documents({}) == 3 * EVAL_SIZE

        # Repeated triggers (the same event redelivered, or a new nim.up for the same
        # candidate) never run a finished evaluation again.
        await publisher.publish(up)
        await publisher.publish(nim_up(world, run_id))
        await publisher.publish(customization_done(world, run_id))
        await asyncio.sleep(2)
        assert len(await events(config, "eval.done", 10, timeout_s=3)) == 3
        assert await service.kit.db[EVALUATIONS].count_documents({}) == 3
        assert await records.count_documents({}) == 3 * EVAL_SIZE


async def test_nmp_backend_scores_through_the_evaluation_api(
    world: World, kafka_bootstrap: str, mongo_url: str
) -> None:
    config = settings(world, kafka_bootstrap, mongo_url, backend="nmp")
    run_id = uuid.uuid4()
    async with evaluator(config) as (_, publisher):
        context = world.with_eval_types(EvalType.BASE, EvalType.ICL)
        await publisher.publish(nim_up(world, run_id, context))
        done = await eval_done(config, 2)
        assert all(d.ok for d in done.values()), done
        base, icl = done[EvalType.BASE], done[EvalType.ICL]
        print(f"\nnmp backend: base {accuracy(base):.3f}, icl {accuracy(icl):.3f}")
        assert accuracy(base) < accuracy(icl)
        assert base.job_id is not None and base.job_id.startswith("eval-")
        assert base.usage is not None and base.usage.requests == 10
        # The finished jobs were deleted from NMP once their results were stored.
        async with httpx.AsyncClient(base_url=world.url) as client:
            for d in done.values():
                gone = await client.get(f"/v1/evaluation/jobs/{d.job_id}")
                assert gone.status_code == 404


async def test_cancel_aborts_and_reports_cancelled(
    world: World, kafka_bootstrap: str, mongo_url: str
) -> None:
    config = settings(world, kafka_bootstrap, mongo_url, chat={"concurrency": 2})
    run_id = uuid.uuid4()
    async with httpx.AsyncClient(base_url=world.url) as admin:
        # Slow answers, so the evaluations are still running when the cancel arrives.
        assert (
            await admin.put("/emulator/timings", json={"token_latency_ms": 20})
        ).status_code == 200
        try:
            async with evaluator(config) as (service, publisher):
                await publisher.publish(nim_up(world, run_id))
                assert len(await events(config, EvalStarted.EVENT_TYPE, 2)) == 2
                await publisher.publish(run_cancelled(run_id))
                done = await eval_done(config, 2, timeout_s=30)
                for d in done.values():
                    assert d.error is not None and d.error.kind is EvalErrorKind.CANCELLED
                jobs = service.kit.db[EVALUATIONS]

                async def all_cancelled() -> bool:
                    statuses = {doc["status"] async for doc in jobs.find({})}
                    return statuses == {"cancelled"}

                await eventually(all_cancelled, timeout_s=10)
                # The adapter finishing after the cancel is recorded as cancelled, not run.
                await publisher.publish(customization_done(world, run_id))
                done = await eval_done(config, 3, timeout_s=30)
                late = done[EvalType.CUSTOMIZED].error
                assert late is not None and late.kind is EvalErrorKind.CANCELLED
                # In-flight requests were aborted: far fewer records than the eval set.
                saved = await service.kit.db[RECORDS].count_documents({})
                assert saved < 2 * EVAL_SIZE
        finally:
            await admin.put("/emulator/timings", json={"token_latency_ms": 0})


async def test_failure_injection_is_reported_and_excluded(
    world: World, kafka_bootstrap: str, mongo_url: str
) -> None:
    """Acceptance 4: 10% errors and some timeouts on every chat request of this private
    emulator. The evaluation completes, counts the failed requests, and its scores are over
    the answered records only; with retries on, fewer requests fail."""
    faults = {
        "seed": 5,
        "endpoints": {
            "/v1/chat/completions": {
                "error_rate": 0.1,
                "timeout_rate": 0.03,
                "timeout_seconds": 2.0,
            }
        },
    }
    context = world.with_eval_types(EvalType.BASE)
    failed: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=world.url) as admin:
        assert (await admin.put("/emulator/faults", json=faults)).status_code == 200
        try:
            for attempts in (1, 4):
                chat = {"attempts": attempts, "request_timeout_s": 0.5, "backoff_s": 0.05}
                config = settings(world, kafka_bootstrap, mongo_url, chat=chat)
                async with evaluator(config) as (service, publisher):
                    await publisher.publish(nim_up(world, uuid.uuid4(), context))
                    base = (await eval_done(config, 1))[EvalType.BASE]
                    assert base.ok, base.error
                    records = [doc async for doc in service.kit.db[RECORDS].find({})]
                scores = {s.name: s for s in base.scores}
                names = scores["function_name_accuracy"]
                answered = [r for r in records if r["ok"]]
                # Every record is accounted for; failed requests are counted, not scored 0.
                assert len(records) == names.n == EVAL_SIZE
                assert names.failed == EVAL_SIZE - len(answered)
                expected = sum(r["scores"]["function_name_accuracy"] for r in answered) / len(
                    answered
                )
                assert names.value == pytest.approx(expected)
                # The judge's own failed requests add to the correctness metric's failures.
                assert scores["tool_calling_correctness"].failed >= names.failed
                assert base.usage is not None and base.usage.requests == len(answered)
                failed[attempts] = names.failed
        finally:
            await admin.put("/emulator/faults", json={})
    print(
        f"\nfailed requests with 10% errors + 3% timeouts: {failed[1]} without retries, {failed[4]} with"
    )
    assert failed[1] > 0
    assert failed[4] < failed[1]


async def test_a_restarted_instance_resumes_from_mongo(
    world: World, kafka_bootstrap: str, mongo_url: str
) -> None:
    config = settings(
        world,
        kafka_bootstrap,
        mongo_url,
        chat={"concurrency": 2},
        worker={"poll_interval_s": 0.2, "lease_s": 6.0, "records_batch": 5},
    )
    run_id = uuid.uuid4()
    async with httpx.AsyncClient(base_url=world.url) as admin:
        assert (
            await admin.put("/emulator/timings", json={"token_latency_ms": 5})
        ).status_code == 200
        try:
            async with evaluator(config, keep_database=True) as (first, publisher):
                await publisher.publish(nim_up(world, run_id, world.with_eval_types(EvalType.BASE)))
                records = first.kit.db[RECORDS]

                async def some_saved() -> bool:
                    return await records.count_documents({}) >= 10

                await eventually(some_saved, timeout_s=30)
            # The first instance stopped mid-evaluation (and released its lease).
            saved_before = await _count(config, RECORDS)
            assert 10 <= saved_before < EVAL_SIZE
        finally:
            await admin.put("/emulator/timings", json={"token_latency_ms": 0})
    second = config.model_copy(update={"instance_id": f"{config.instance_id}-2"})
    async with evaluator(second) as (service, _):
        base = (await eval_done(second, 1))[EvalType.BASE]
        assert base.ok, base.error
        job = await service.kit.db[EVALUATIONS].find_one({})
        assert job is not None and job["attempts"] == 2
        # Records saved by the first instance were kept, none evaluated twice.
        assert await service.kit.db[RECORDS].count_documents({}) == EVAL_SIZE
        assert all(s.n == EVAL_SIZE for s in base.scores)


async def _count(config: EvaluatorSettings, collection: str) -> int:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(config.mongo.url.get_secret_value())
    try:
        return await client[config.mongo.database][collection].count_documents({})
    finally:
        await client.close()
