"""The janitor's acceptance criteria on the real stack (Kafka, Mongo) and a private NMP emulator.

The tests play the other services: each step of a run changes the emulator through the NMP
client, then publishes the event saying so, on the test's own topic prefix. Training and
evaluation jobs are given hour-long timings so they stay running until someone stops them;
deployments are ready at once. Every test starts from, and must leave, an emulator where nothing
runs, and cleans it up if it does not.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import pytest
from confluent_kafka.admin import AdminClient
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts.envelope import Envelope, decode, new_event
from flywheel_contracts.events import (
    ReclaimTrigger,
    ResourceKind,
    ResourceRef,
    ResourcesReclaimed,
    RunCancelled,
    RunRequested,
    SystemShutdown,
)
from flywheel_contracts.examples import EXAMPLES
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime import (
    DeliverySettings,
    KafkaSettings,
    MongoSettings,
    Publisher,
)
from flywheel_contracts.runtime.nmp import (
    CustomizationConfigSpec,
    CustomizationJob,
    EvaluationJob,
    Hyperparameters,
    NimDeploymentSpec,
    NmpClient,
    NmpSettings,
)
from flywheel_contracts.runtime.nmp.names import nmp_model_name
from flywheel_contracts.runtime.nmp.testing.sdk import live_resources
from flywheel_contracts.runtime.testing import read_topic
from flywheel_janitor.app import create_app
from flywheel_janitor.config import JanitorSettings, ReclaimSettings, SweepSettings
from flywheel_janitor.ledger import NO_RUN
from flywheel_janitor.testing import (
    customization_done,
    customization_started,
    eval_done,
    eval_started,
    nim_down,
    nim_up,
)
from flywheel_nmp_emulator.config import Timings
from flywheel_nmp_emulator.testing import (
    emulator_process,
    free_port,
    tool_calling_config,
    upload_dataset,
)

pytestmark = pytest.mark.integration

NAMESPACE = "dfwbp"
TRAINED_MODEL = "meta/llama-3.2-1b-instruct"
JUDGE = "meta/llama-3.3-70b-instruct"
TRAIN_DATASET = "janitor-train"
EVAL_DATASET = "janitor-eval"
RECLAIM_WITHIN_S = 5.0
HOUR = 3600.0
RUNNING_JOB_STATES = frozenset({"created", "pending", "running"})


# --- the private emulator -------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    state = tmp_path_factory.mktemp("janitor-nmp") / "state.json"
    with emulator_process(state, port, gpus=16) as admin:
        # Jobs run for an hour unless stopped; deployments are ready at once.
        timings = Timings(training_seconds_per_epoch=HOUR, eval_seconds_per_record=HOUR)
        admin.put("/emulator/timings", json=timings.model_dump()).raise_for_status()
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
async def admin(emulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emulator_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
async def nmp(emulator_url: str, admin: httpx.AsyncClient) -> AsyncIterator[NmpClient]:
    settings = NmpSettings(
        nemo_base_url=emulator_url, nim_base_url=emulator_url, datastore_base_url=emulator_url
    )
    async with NmpClient(settings) as client:
        await client.customizer.create_config(
            TRAINED_MODEL, CustomizationConfigSpec(target=f"{TRAINED_MODEL}@2.0")
        )
        chat = [{"role": "user", "content": "where is my order?"}]
        answer = {"role": "assistant", "content": "", "tool_calls": []}
        await upload_dataset(
            admin,
            NAMESPACE,
            TRAIN_DATASET,
            {"training/train_data.jsonl": [{"messages": [*chat, answer]}]},
        )
        await upload_dataset(
            admin,
            NAMESPACE,
            EVAL_DATASET,
            {"eval_data.jsonl": [{"request": {"messages": chat}, "response": {"choices": []}}]},
        )
        yield client


async def running_in_emulator(admin: httpx.AsyncClient) -> list[str]:
    """Every deployment, running job and GPU holder the emulator has."""
    state = (await admin.get("/emulator/state")).json()
    jobs = [
        job_id
        for collection in ("customization_jobs", "evaluation_jobs")
        for job_id, job in state[collection].items()
        if job["status"] in RUNNING_JOB_STATES
    ]
    return sorted([*state["deployments"], *jobs, *state["gpus"]["holders"]])


async def wait_until_idle(admin: httpx.AsyncClient, since: float, within_s: float) -> float:
    """Seconds from `since` (a `time.monotonic()`) until nothing runs in the emulator."""
    while True:
        left = await running_in_emulator(admin)
        elapsed = time.monotonic() - since
        if not left:
            return elapsed
        if elapsed > within_s:
            raise AssertionError(f"still running {elapsed:.1f}s later: {left}")
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
async def idle_emulator(admin: httpx.AsyncClient, nmp: NmpClient) -> AsyncIterator[None]:
    """Each test starts with nothing running, and whatever it leaves is removed afterwards (so
    one failure does not spill into the next test)."""
    assert await running_in_emulator(admin) == []
    yield
    state = (await admin.get("/emulator/state")).json()
    for deployment in state["deployments"].values():
        await nmp.deployments.delete(deployment["model"])
    for job_id in state["customization_jobs"]:
        await nmp.customizer.stop_job(job_id)
    for job_id in state["evaluation_jobs"]:
        await nmp.evaluator.stop_job(job_id)
        await nmp.evaluator.delete_job(job_id)


# --- one test's Flywheel: topics, database, janitor settings --------------------------------


@dataclass
class Flywheel:
    bootstrap: str
    settings: JanitorSettings
    publisher: Publisher
    db: AsyncDatabase[dict[str, Any]]

    async def publish(self, payload: EventPayload, run_id: UUID | None, producer: str) -> None:
        await self.publisher.publish(new_event(payload, producer=producer, run_id=run_id))

    async def reports(self) -> list[Envelope[ResourcesReclaimed]]:
        """Every report, once the janitor has no reclaim left to do. How many there are
        depends on the order events were consumed in (a nim.up consumed after the cancel gets
        a report of its own), so the count comes from the janitor's finished tasks."""
        tasks = self.db["janitor_tasks"]

        async def all_done() -> bool:
            return await tasks.count_documents({"done": False}) == 0

        await wait_for(all_done)
        count = await tasks.count_documents({"report": {"$ne": None}})
        topic = self.settings.kafka.topic(ResourcesReclaimed.EVENT_TYPE)
        messages = await asyncio.to_thread(read_topic, self.bootstrap, topic, count, 30.0)
        assert len(messages) == count
        return [decode(m.value() or b"") for m in messages]


@pytest.fixture
async def flywheel(
    kafka_bootstrap: str, mongo_url: str, emulator_url: str
) -> AsyncIterator[Flywheel]:
    prefix = f"tjan{uuid.uuid4().hex[:8]}."
    database = f"janitor_test_{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, session_timeout_ms=6000
    )
    settings = JanitorSettings(
        instance_id=f"janitor-{prefix}",
        group_id=f"flywheel.janitor.{prefix}",
        kafka=kafka,
        mongo=MongoSettings(url=mongo_url, database=database),
        delivery=DeliverySettings(max_attempts=4, backoff_base_s=0.05, backoff_max_s=0.2),
        shutdown_timeout_s=5.0,
        nmp=NmpSettings(
            nemo_base_url=emulator_url,
            nim_base_url=emulator_url,
            datastore_base_url=emulator_url,
            retry_backoff_s=0.05,
        ),
        reclaim=ReclaimSettings(poll_interval_s=0.2, gone_timeout_s=5.0, gone_poll_s=0.02),
        sweeps=SweepSettings(orphans_enabled=False),
    )
    publisher = Publisher(kafka, client_id=f"janitor-test.{prefix}")
    publisher.start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        yield Flywheel(kafka_bootstrap, settings, publisher, mongo[database])
    finally:
        await publisher.close()
        await mongo.drop_database(database)
        await mongo.close()
        await asyncio.to_thread(_delete_topics, kafka_bootstrap, prefix)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=10).values():
            future.result(timeout=15)


@asynccontextmanager
async def janitor(settings: JanitorSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A janitor instance from start to graceful stop; yields a client of its HTTP view."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://janitor") as http,
    ):
        yield http


async def ledger_live(http: httpx.AsyncClient) -> int:
    count: int = (await http.get("/ledger/live")).json()["count"]
    return count


async def wait_for(condition: Callable[[], Any], within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        await asyncio.sleep(0.05)


# --- playing the other services -------------------------------------------------------------


def deployment_ref(name: str) -> ResourceRef:
    return ResourceRef(kind=ResourceKind.DEPLOYMENT, id=f"{NAMESPACE}/{name}")


@dataclass
class RunPlayer:
    """One run's lifetime as the other services would live it, one step at a time."""

    index: int
    nmp: NmpClient
    flywheel: Flywheel
    run_id: UUID = field(default_factory=uuid.uuid4)
    held: dict[str, ResourceRef] = field(default_factory=dict)
    """What the run holds in NMP now (what nobody but the janitor will take back)."""
    jobs: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> list[Callable[[], Any]]:
        return [
            self.request,
            self.datasets_ready,
            lambda: self.deploy("a"),
            lambda: self.deploy("b"),
            self.train,
            self.evaluate,
            self.evaluation_done,
            self.training_done,
            lambda: self.undeploy("b"),
            lambda: self.undeploy("a"),
            self.complete,
        ]

    CREATING_STEPS = frozenset({2, 3, 4, 5})

    def model(self, candidate: str) -> str:
        return f"test/run{self.index}-{candidate}"

    async def _publish(self, payload: EventPayload, producer: str) -> None:
        await self.flywheel.publish(payload, self.run_id, producer)

    async def request(self) -> None:
        await self._publish(RunRequested(workload_id="orders", client_id="acme"), "client")

    async def datasets_ready(self) -> None:
        await self._publish(EXAMPLES["dataset.ready"].payload, "datasets")

    async def deploy(self, candidate: str) -> None:
        model = self.model(candidate)
        await self.nmp.deployments.create(model, NimDeploymentSpec(image_tag="1.0"))
        name = nmp_model_name(model)
        self.held[name] = deployment_ref(name)
        await self._publish(nim_up(name, NAMESPACE, model), "nim-manager")

    async def undeploy(self, candidate: str) -> None:
        name = nmp_model_name(self.model(candidate))
        if self.held.pop(name, None) is not None:
            await self.nmp.deployments.delete(self.model(candidate))
        await self._publish(nim_down(name), "nim-manager")

    async def train(self) -> None:
        job = await self.nmp.customizer.create_job(
            # NMP refuses a second job of the same name in a namespace: one name per run.
            workload_id=f"orders-{self.run_id.hex}",
            model_name=TRAINED_MODEL,
            dataset_name=TRAIN_DATASET,
            hyperparameters=Hyperparameters(epochs=1),
        )
        assert isinstance(job, CustomizationJob)
        self.jobs["training"] = job.id
        self.held[job.id] = ResourceRef(kind=ResourceKind.CUSTOMIZATION_JOB, id=job.id)
        await self._publish(customization_started(job.id), "customizer")

    async def training_done(self) -> None:
        job_id = self.jobs["training"]
        if self.held.pop(job_id, None) is not None:
            await self.nmp.customizer.cancel_job(job_id)  # as if it had finished
        await self._publish(customization_done(job_id), "customizer")

    async def evaluate(self) -> None:
        files_url = f"hf://datasets/{NAMESPACE}/{EVAL_DATASET}"
        job = await self.nmp.evaluator.launch(
            tool_calling_config(files_url, JUDGE), self.model("a")
        )
        assert isinstance(job, EvaluationJob)
        self.jobs["evaluation"] = job.id
        self.held[job.id] = ResourceRef(kind=ResourceKind.EVALUATION_JOB, id=job.id)
        await self._publish(eval_started(job.id), "evaluator")

    async def evaluation_done(self) -> None:
        job_id = self.jobs["evaluation"]
        if self.held.pop(job_id, None) is not None:
            await self.nmp.evaluator.delete_job(job_id)
        await self._publish(eval_done(job_id), "evaluator")

    async def complete(self) -> None:
        await self._publish(EXAMPLES["run.completed"].payload, "nim-manager")

    async def play(self, steps: int) -> None:
        for step in self.steps[:steps]:
            await step()


def reports_of(reports: list[Envelope[ResourcesReclaimed]], run_id: UUID) -> list[Any]:
    return [r.payload for r in reports if r.run_id == run_id]


# --- acceptance -----------------------------------------------------------------------------


async def test_cancelling_at_20_random_points_leaves_nothing_running(
    flywheel: Flywheel, nmp: NmpClient, admin: httpx.AsyncClient
) -> None:
    """Acceptance 1: within 5 s of each cancel, no deployment and no running job is left,
    including resources whose event arrives after the cancel."""
    rng = random.Random(20250601)
    players: list[tuple[RunPlayer, dict[str, ResourceRef]]] = []
    latencies: list[float] = []
    async with janitor(flywheel.settings) as http:
        for index in range(20):
            player = RunPlayer(index, nmp, flywheel)
            point = rng.randint(0, len(player.steps))
            await player.play(point)
            cancelled_at = time.monotonic()
            await flywheel.publish(
                RunCancelled(reason=f"cancel at step {point}"), player.run_id, "cli"
            )
            if point in RunPlayer.CREATING_STEPS and rng.random() < 0.5:
                await player.steps[point]()  # its owner finishes it after the cancel
            latencies.append(await wait_until_idle(admin, cancelled_at, RECLAIM_WITHIN_S))
            players.append((player, dict(player.held)))
        reports = await flywheel.reports()
        assert await ledger_live(http) == 0
        run = (await http.get(f"/ledger/runs/{players[-1][0].run_id}")).json()

    assert run["run"]["terminal"]["trigger"] == "run_cancelled"
    for player, held in players:
        mine = reports_of(reports, player.run_id)
        assert ReclaimTrigger.RUN_CANCELLED in {r.trigger for r in mine}
        assert {ref for r in mine for ref in r.reclaimed} == set(held.values())
        assert not any(r.failed for r in mine)
    assert max(latencies) < RECLAIM_WITHIN_S
    # The official SDK, listing every namespace page by page, agrees that nothing is left.
    assert await live_resources(str(admin.base_url)) == []
    print(
        f"\ncancel -> nothing running: median {sorted(latencies)[len(latencies) // 2]:.3f}s, "
        f"max {max(latencies):.3f}s over {len(latencies)} cancels"
    )


async def test_an_unknown_deployment_is_reclaimed_after_the_grace_period(
    flywheel: Flywheel, nmp: NmpClient, admin: httpx.AsyncClient
) -> None:
    """Acceptance 2: a deployment (and a training job) nobody announced is reclaimed once the
    grace period has passed, never before; what a live run holds is left alone."""
    grace = 1.5
    settings = flywheel.settings.model_copy(
        update={
            "sweeps": SweepSettings(
                orphans_enabled=True, orphan_interval_s=0.2, orphan_grace_s=grace
            )
        }
    )
    known = RunPlayer(0, nmp, flywheel)
    async with janitor(settings) as http:
        await known.play(3)  # announced: request, datasets, one deployment

        async def known_is_live() -> bool:
            return await ledger_live(http) == 1

        await wait_for(known_is_live)
        created = time.monotonic()
        await nmp.deployments.create("test/orphan", NimDeploymentSpec(image_tag="1.0"))
        orphan_job = await nmp.customizer.create_job(
            workload_id=f"nobody-{uuid.uuid4().hex}",
            model_name=TRAINED_MODEL,
            dataset_name=TRAIN_DATASET,
            hyperparameters=Hyperparameters(),
        )
        assert isinstance(orphan_job, CustomizationJob)

        async def orphans_gone() -> bool:
            return await running_in_emulator(admin) == sorted(
                [f"{NAMESPACE}/test-run0-a", f"deployment:{NAMESPACE}/test-run0-a"]
            )

        await wait_for(orphans_gone, within_s=grace + 10)
        reclaimed_after = time.monotonic() - created
        await flywheel.publish(RunCancelled(), known.run_id, "cli")
        await wait_until_idle(admin, time.monotonic(), RECLAIM_WITHIN_S)
        reports = await flywheel.reports()

    timeline = (await admin.get("/emulator/timeline", params={"kind": "deployment"})).json()
    times = {(e["id"], e["event"]): e["at"] for e in timeline["events"] if "orphan" in e["id"]}
    orphan_key = f"{NAMESPACE}/test-orphan"
    assert times[(orphan_key, "deleted")] - times[(orphan_key, "requested")] >= grace
    # One report per sweep that found something due: the two orphans share one when a sweep
    # first sees both, and get one each when the job was created after a sweep saw the deployment.
    orphan_reports = [r.payload for r in reports if r.run_id == NO_RUN]
    assert orphan_reports
    assert all(p.trigger is ReclaimTrigger.STALE_RUN for p in orphan_reports)
    assert all(p.reason.startswith("orphaned") for p in orphan_reports)
    reclaimed = [ref for p in orphan_reports for ref in p.reclaimed]
    assert len(reclaimed) == len(set(reclaimed)), "an orphan reclaimed twice"
    assert set(reclaimed) == {
        deployment_ref("test-orphan"),
        ResourceRef(kind=ResourceKind.CUSTOMIZATION_JOB, id=orphan_job.id),
    }
    print(f"\norphans reclaimed {reclaimed_after:.2f}s after creation (grace {grace}s)")


async def test_a_run_cancelled_while_the_janitor_is_down_is_reclaimed_after_restart(
    flywheel: Flywheel, nmp: NmpClient, admin: httpx.AsyncClient
) -> None:
    """Acceptance 3: the cancel waits in Kafka, the ledger in Mongo; a restarted janitor
    reclaims the run's resources."""
    player = RunPlayer(0, nmp, flywheel)
    async with janitor(flywheel.settings) as http:
        await player.play(6)  # two deployments, a training job, an evaluation job

        async def all_known() -> bool:
            return await ledger_live(http) == 4

        await wait_for(all_known)
        held = await running_in_emulator(admin)

    await flywheel.publish(
        RunCancelled(reason="cancelled during maintenance"), player.run_id, "cli"
    )
    await asyncio.sleep(0.5)
    assert await running_in_emulator(admin) == held  # nobody reclaims while the janitor is down

    restarted = time.monotonic()
    async with janitor(flywheel.settings) as http:
        elapsed = await wait_until_idle(admin, restarted, 30.0)
        (report,) = reports_of(await flywheel.reports(), player.run_id)
        stopped = (await http.get("/ledger/instances")).json()["instances"]
        ready = await http.get("/health/ready")

    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["nmp"]["ok"] is True
    assert [i["service"] for i in stopped] == ["janitor"]
    assert report.trigger is ReclaimTrigger.RUN_CANCELLED
    assert set(report.reclaimed) == set(player.held.values())
    print(f"\nrestarted janitor reclaimed the cancelled run in {elapsed:.2f}s")


async def test_shutdown_during_three_concurrent_runs_leaves_nothing_live(
    flywheel: Flywheel, nmp: NmpClient, admin: httpx.AsyncClient
) -> None:
    """Acceptance 4: system.shutdown reclaims every run's resources, and a resource a run
    announces after the shutdown too, and reports them run by run."""
    players = [RunPlayer(index, nmp, flywheel) for index in range(3)]
    async with janitor(flywheel.settings) as http:
        for steps, player in zip((6, 5, 4), players, strict=True):
            await player.play(steps)
        shutdown_at = time.monotonic()
        await flywheel.publish(SystemShutdown(requested_by="ops"), None, "operator")
        await players[2].steps[4]()  # a training job its owner started during the shutdown
        elapsed = await wait_until_idle(admin, shutdown_at, RECLAIM_WITHIN_S)
        reports = await flywheel.reports()
        assert await ledger_live(http) == 0

    for player in players:
        mine = reports_of(reports, player.run_id)
        assert {r.trigger for r in mine} == {ReclaimTrigger.SYSTEM_SHUTDOWN}
        assert {ref for r in mine for ref in r.reclaimed} == set(player.held.values())
    print(f"\nshutdown -> nothing running in {elapsed:.3f}s")
