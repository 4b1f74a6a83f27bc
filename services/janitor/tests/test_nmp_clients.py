"""The NMP adapters on recorded NMP answers: what each reclaim calls and how its outcome is told,
and how the inventory lists (and pages) what runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from flywheel_contracts.events import ResourceKind
from flywheel_contracts.runtime.nmp import (
    CustomizationConfigSpec,
    CustomizationJob,
    EvaluationJob,
    Hyperparameters,
    NimDeploymentSpec,
    NmpClient,
    NmpSettings,
)
from flywheel_contracts.runtime.nmp.testing import RecordedNmp, RecordingTransport
from flywheel_janitor.clients.inventory import NmpInventory
from flywheel_janitor.clients.nmp import NmpResources
from flywheel_janitor.config import ReclaimSettings
from flywheel_janitor.ledger import Outcome, Target

pytestmark = pytest.mark.unit

SETTINGS = NmpSettings(retry_attempts=1)
RECLAIM = ReclaimSettings(gone_timeout_s=0.2, gone_poll_s=0.01)
MODEL = "meta/llama-3.2-1b-instruct"
DEPLOYMENT = Target(
    kind=ResourceKind.DEPLOYMENT, resource_id="meta-llama-3.2-1b-instruct", namespace="dfwbp"
)


@pytest.fixture
def recorded() -> RecordedNmp:
    return RecordedNmp(SETTINGS)


@pytest.fixture
def wire(recorded: RecordedNmp) -> RecordingTransport:
    return RecordingTransport(recorded.transport())


@pytest.fixture
async def nmp(wire: RecordingTransport) -> AsyncIterator[NmpClient]:
    async with NmpClient(SETTINGS, transport=wire) as client:
        yield client


@pytest.fixture
async def resources(wire: RecordingTransport) -> AsyncIterator[NmpResources]:
    adapter = NmpResources(SETTINGS, RECLAIM, transport=wire)
    yield adapter
    await adapter.aclose()


async def _training_job(nmp: NmpClient) -> str:
    await nmp.customizer.create_config(MODEL, CustomizationConfigSpec(target=f"{MODEL}@2.0"))
    job = await nmp.customizer.create_job(
        workload_id="w1", model_name=MODEL, dataset_name="train", hyperparameters=Hyperparameters()
    )
    assert isinstance(job, CustomizationJob)
    return job.id


def _calls(wire: RecordingTransport, mark: int) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in wire.since(mark)]


async def test_a_deployment_is_deleted_then_checked_gone(
    nmp: NmpClient, resources: NmpResources, wire: RecordingTransport
) -> None:
    await nmp.deployments.create(MODEL, NimDeploymentSpec(image_tag="1.8.3"))
    mark = len(wire.sent)

    result = await resources.reclaim(DEPLOYMENT)

    assert result.outcome is Outcome.RECLAIMED
    path = "/v1/deployment/model-deployments/dfwbp/meta-llama-3.2-1b-instruct"
    assert _calls(wire, mark) == [f"DELETE {path}", f"GET {path}"]
    assert (await resources.reclaim(DEPLOYMENT)).outcome is Outcome.ALREADY_GONE


async def test_a_deployment_in_another_namespace_is_deleted_there(
    recorded: RecordedNmp, resources: NmpResources, wire: RecordingTransport
) -> None:
    async with NmpClient(SETTINGS.model_copy(update={"namespace": "other"}), transport=wire) as c:
        await c.deployments.create(MODEL, NimDeploymentSpec(image_tag="1.8.3"))

    result = await resources.reclaim(DEPLOYMENT.model_copy(update={"namespace": "other"}))

    assert result.outcome is Outcome.RECLAIMED
    assert recorded.state.deployments == {}


async def test_a_running_training_job_is_cancelled(
    nmp: NmpClient, resources: NmpResources, recorded: RecordedNmp, wire: RecordingTransport
) -> None:
    job_id = await _training_job(nmp)
    mark = len(wire.sent)

    result = await resources.reclaim(
        Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id=job_id)
    )

    assert result.outcome is Outcome.RECLAIMED
    assert recorded.state.customizations[job_id].cancelled
    assert _calls(wire, mark) == [
        f"GET /v1/customization/jobs/{job_id}/status",
        f"POST /v1/customization/jobs/{job_id}/cancel",
        f"GET /v1/customization/jobs/{job_id}/status",
    ]


async def test_a_finished_or_unknown_training_job_is_already_gone(
    nmp: NmpClient, resources: NmpResources, recorded: RecordedNmp
) -> None:
    job_id = await _training_job(nmp)
    while (await nmp.customizer.job_status(job_id)).status != "completed":
        pass

    finished = await resources.reclaim(
        Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id=job_id)
    )
    unknown = await resources.reclaim(
        Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id="cust-x")
    )

    assert (finished.outcome, unknown.outcome) == (Outcome.ALREADY_GONE, Outcome.ALREADY_GONE)
    assert not recorded.state.customizations[job_id].cancelled


async def test_a_running_evaluation_job_is_cancelled_then_deleted(
    nmp: NmpClient, resources: NmpResources, recorded: RecordedNmp, wire: RecordingTransport
) -> None:
    job = await nmp.evaluator.launch({"tasks": {}}, MODEL)
    assert isinstance(job, EvaluationJob)
    target = Target(kind=ResourceKind.EVALUATION_JOB, resource_id=job.id)
    mark = len(wire.sent)

    assert (await resources.reclaim(target)).outcome is Outcome.RECLAIMED
    assert _calls(wire, mark)[:3] == [
        f"GET /v1/evaluation/jobs/{job.id}",
        f"POST /v1/evaluation/jobs/{job.id}/cancel",
        f"DELETE /v1/evaluation/jobs/{job.id}",
    ]
    assert recorded.state.evaluations == {}
    assert (await resources.reclaim(target)).outcome is Outcome.ALREADY_GONE


async def test_a_404_to_a_cancel_is_a_failure_while_the_job_still_runs(
    recorded: RecordedNmp,
) -> None:
    def wrong_route(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/cancel"):
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, json={"status": "running", "status_logs": []})

    adapter = NmpResources(SETTINGS, RECLAIM, transport=_answering(wrong_route, recorded))
    target = Target(kind=ResourceKind.CUSTOMIZATION_JOB, resource_id="cust-1")
    result = await adapter.reclaim(target)
    await adapter.aclose()

    assert result.outcome is Outcome.FAILED
    assert result.error is not None and "answered 404 but the job is running" in result.error


async def test_a_404_to_a_delete_is_a_failure_while_a_read_still_finds_the_deployment(
    recorded: RecordedNmp,
) -> None:
    def wrong_route(request: httpx.Request) -> httpx.Response | None:
        if request.method == "DELETE":
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, json={"status_details": {"status": "ready"}})

    adapter = NmpResources(SETTINGS, RECLAIM, transport=_answering(wrong_route, recorded))
    result = await adapter.reclaim(DEPLOYMENT)
    await adapter.aclose()

    assert result.outcome is Outcome.FAILED
    assert result.error is not None and "404" in result.error


def _answering(answer: Callable[[httpx.Request], httpx.Response | None], inner: RecordedNmp) -> Any:
    """A transport where `answer` may replace the recorded NMP's response."""

    def handle(request: httpx.Request) -> httpx.Response:
        return answer(request) or inner.handle(request)

    return httpx.MockTransport(handle)


async def test_nmp_refusing_a_delete_is_a_failure_with_its_answer(recorded: RecordedNmp) -> None:
    def busy(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(503, json={"detail": "busy"}) if request.method == "DELETE" else None

    adapter = NmpResources(SETTINGS, RECLAIM, transport=_answering(busy, recorded))
    result = await adapter.reclaim(DEPLOYMENT)
    await adapter.aclose()

    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    assert "503" in result.error
    assert "busy" in result.error


async def test_a_deployment_that_stays_after_its_delete_is_a_failure(recorded: RecordedNmp) -> None:
    def never_gone(request: httpx.Request) -> httpx.Response | None:
        if request.method == "DELETE":
            return httpx.Response(200, json={"message": "deleting"})
        return httpx.Response(200, json={"status_details": {"status": "ready"}})

    adapter = NmpResources(SETTINGS, RECLAIM, transport=_answering(never_gone, recorded))
    result = await adapter.reclaim(DEPLOYMENT)
    await adapter.aclose()

    assert result.outcome is Outcome.FAILED
    assert result.error == (
        "deployment dfwbp/meta-llama-3.2-1b-instruct still there 0.2s after it was reclaimed"
    )


async def test_kinds_the_janitor_does_not_own_are_refused(resources: NmpResources) -> None:
    result = await resources.reclaim(Target(kind=ResourceKind.DATASET, resource_id="dfwbp/x"))

    assert result.outcome is Outcome.FAILED
    assert result.error == "the janitor does not reclaim datasets"


LISTS: dict[str, list[dict[str, Any]]] = {
    "/v1/deployment/model-deployments": [
        {"name": "dep-a", "namespace": "dfwbp", "status_details": {"status": "ready"}},
        {"name": "dep-b", "namespace": "dfwbp", "status_details": {"status": "failed"}},
        {"name": "dep-c", "namespace": "someone-else", "status_details": {"status": "ready"}},
    ],
    "/v1/customization/jobs": [
        {"id": "cust-1", "namespace": "dfwbp", "status": "running"},
        {"id": "cust-2", "namespace": "dfwbp", "status": "pending"},
        {"id": "cust-3", "namespace": "dfwbp", "status": "completed"},
    ],
    "/v1/evaluation/jobs": [
        {"id": "eval-1", "namespace": "dfwbp", "status": "created"},
        {"id": "eval-2", "namespace": "dfwbp", "status": "cancelled"},
        {"id": "eval-3", "namespace": "other", "status": "running"},
    ],
}


def _lister(*, paged: bool) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        items = LISTS[request.url.path]
        page = int(request.url.params["page"])
        if not paged:  # everything at once, and an empty page past it
            return httpx.Response(200, json={"object": "list", "data": items if page == 1 else []})
        size = 2  # NMP caps the page size it serves
        pages = -(-len(items) // size)
        body = {
            "data": items[(page - 1) * size : page * size],
            "pagination": {"page": page, "page_size": size, "total_pages": pages},
        }
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handle), seen


EXPECTED = {
    "deployment/dep-a",
    "deployment/dep-b",
    "customization_job/cust-1",
    "customization_job/cust-2",
    "evaluation_job/eval-1",
}


async def test_the_inventory_lists_what_runs_in_the_namespace() -> None:
    transport, seen = _lister(paged=False)
    inventory = NmpInventory(SETTINGS, transport=transport)

    found = await inventory.live_resources()
    await inventory.aclose()

    assert {t.key for t in found} == EXPECTED
    assert {t.namespace for t in found if t.kind is ResourceKind.DEPLOYMENT} == {"dfwbp"}
    # No `pagination`: each list is read until an empty page, as the SDK's auto-pager does.
    assert len(seen) == 6


async def test_the_inventory_follows_nmp_pages() -> None:
    transport, seen = _lister(paged=True)
    inventory = NmpInventory(SETTINGS, transport=transport)

    found = await inventory.live_resources()
    await inventory.aclose()

    assert {t.key for t in found} == EXPECTED
    assert len(seen) == 6  # two pages of each collection, the second saying it is the last
    assert all(r.url.params["filter[namespace]"] == "dfwbp" for r in seen)
