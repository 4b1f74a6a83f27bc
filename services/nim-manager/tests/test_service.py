"""The conductor over in-memory ports: runs planned, packed into the budget, served, removed,
concluded; failures, cancellations, restarts and stale events."""

from uuid import uuid4

import pytest

from flywheel_contracts.events import (
    DeploymentRole,
    NimDown,
    NimDownReason,
    NimFailed,
    NimFailureReason,
    RunCompleted,
    RunFailed,
    RunFailureReason,
)
from flywheel_contracts.run_config import EvalType, ExternalEndpoint
from flywheel_nim_manager.records import Phase
from flywheel_nim_manager.testing.fakes import (
    NIM_URL,
    World,
    cancel_event,
    candidate,
    customization_done,
    dataset_failed_event,
    eval_done,
    ready_event,
)

pytestmark = pytest.mark.unit

THREE = [candidate("org/a-1b"), candidate("org/b-1b"), candidate("org/c-1b")]
HOSTED = candidate(
    "org/hosted-8b",
    gpus=8,
    endpoint=ExternalEndpoint(base_url="https://api.example.com/v1", model="hosted-8b-v2"),
)


async def test_a_budget_of_four_deploys_three_candidates_at_once(world: World) -> None:
    run_id, ready = await world.ready(THREE)
    await world.tick()
    assert len(world.deployer.creates) == 3
    await world.tick()
    ups = world.ups(run_id)
    assert [up.candidate.model_name for up in ups] == ["org/a-1b", "org/b-1b", "org/c-1b"]
    first = ups[0]
    assert first.deployment.base_url == f"{NIM_URL}/v1"
    assert first.deployment.model_id == "org/a-1b"
    assert run_id.hex in first.deployment.name
    assert first.context == ready.payload.context


async def test_a_budget_of_one_deploys_one_after_another() -> None:
    world = World(budget=1)
    run_id, _ = await world.ready(THREE)
    for expected in ("org/a-1b", "org/b-1b", "org/c-1b"):
        await world.tick(2)
        assert [up.candidate.model_name for up in world.ups(run_id)][-1] == expected
        assert [d.model for d in world.deployer.deployments.values()] == [expected]
        await world.evaluate(run_id, expected)
    await world.tick()
    assert world.deployer.peak_gpus == 1
    assert len(world.events.of("nim.down", run_id)) == 3
    assert world.events.of("run.completed", run_id)


async def test_finished_work_removes_the_deployment_and_completes_the_run(world: World) -> None:
    run_id, _ = await world.ready(THREE[:2])
    await world.tick(2)
    await world.evaluate(run_id, "org/a-1b", score=0.9)
    await world.tick()
    [down] = [e.payload for e in world.events.of("nim.down", run_id)]
    assert isinstance(down, NimDown)
    assert (down.candidate_model, down.reason) == ("org/a-1b", NimDownReason.FINISHED)
    assert down.deployment_seconds == 2.0  # granted at tick 1, gone at tick 3
    assert world.events.of("run.completed", run_id) == []
    await world.evaluate(run_id, "org/b-1b", score=0.85)
    await world.tick()
    assert world.live_deployments(run_id) == []
    [completed] = [e.payload for e in world.events.of("run.completed", run_id)]
    assert isinstance(completed, RunCompleted)
    assert len(completed.leaderboard.entries) == 4
    assert completed.leaderboard.recommendation.candidate_model is not None


async def test_customization_keeps_the_candidate_up_until_its_evaluation(world: World) -> None:
    run_id, _ = await world.ready(
        [candidate("org/a-1b", customization_enabled=True)],
        eval_types=(EvalType.BASE, EvalType.ICL, EvalType.CUSTOMIZED),
    )
    await world.tick(2)
    [up] = world.ups(run_id)
    await world.evaluate(run_id, "org/a-1b")
    await world.service.on_customization_done(customization_done(run_id, up))
    await world.tick()
    assert world.live_deployments(run_id), "the customized evaluation is still due"
    await world.service.on_eval_done(eval_done(run_id, "org/a-1b", EvalType.CUSTOMIZED))
    await world.tick()
    assert world.live_deployments(run_id) == []
    assert world.events.of("run.completed", run_id)


async def test_a_training_job_takes_its_gpus_from_the_budget_until_it_is_done() -> None:
    world = World(budget=2)
    run_id, _ = await world.ready([candidate("org/a-1b", customization_enabled=True), THREE[1]])
    await world.tick(2)
    [up] = world.ups(run_id)
    assert up.candidate.model_name == "org/a-1b"
    assert len(world.deployer.creates) == 1, "1 GPU deployed + 1 training: the budget is full"
    await world.service.on_customization_done(customization_done(run_id, up))
    await world.tick(2)
    assert [u.candidate.model_name for u in world.ups(run_id)] == ["org/a-1b", "org/b-1b"]


async def test_a_candidate_whose_training_does_not_fit_the_budget_fails_at_once() -> None:
    world = World(budget=1)
    run_id, _ = await world.ready([candidate("org/a-1b", customization_enabled=True)])
    await world.tick()
    [failed] = [e.payload for e in world.events.of("nim.failed", run_id)]
    assert isinstance(failed, NimFailed)
    assert failed.reason is NimFailureReason.INSUFFICIENT_GPUS
    assert world.deployer.creates == []


async def test_a_failed_customization_expects_no_customized_evaluation(world: World) -> None:
    run_id, _ = await world.ready(
        [candidate("org/a-1b", customization_enabled=True)],
        eval_types=(EvalType.BASE, EvalType.ICL, EvalType.CUSTOMIZED),
    )
    await world.tick(2)
    [up] = world.ups(run_id)
    await world.evaluate(run_id, "org/a-1b")
    await world.service.on_customization_done(customization_done(run_id, up, error="diverged"))
    await world.tick()
    assert world.live_deployments(run_id) == []
    [completed] = [e.payload for e in world.events.of("run.completed", run_id)]
    assert isinstance(completed, RunCompleted)
    customized = completed.leaderboard.entries[-1]
    assert customized.eval_type is EvalType.CUSTOMIZED
    assert customized.error == "customization failed: training_failed: diverged"


async def test_a_failed_deployment_frees_its_gpus_and_the_run_goes_on() -> None:
    world = World(budget=1)
    world.deployer.failing = {"org/a-1b"}
    run_id, _ = await world.ready(THREE[:2])
    await world.tick(3)  # create, fail (-> removing), removed
    [failed] = [e.payload for e in world.events.of("nim.failed", run_id)]
    assert isinstance(failed, NimFailed)
    assert failed.reason is NimFailureReason.DEPLOY_FAILED
    await world.tick(2)
    assert [up.candidate.model_name for up in world.ups(run_id)] == ["org/b-1b"]
    await world.evaluate(run_id, "org/b-1b")
    await world.tick()
    [completed] = [e.payload for e in world.events.of("run.completed", run_id)]
    assert isinstance(completed, RunCompleted)
    assert completed.leaderboard.entries[0].error is not None
    assert completed.leaderboard.entries[0].error.startswith("deployment failed")


async def test_a_run_where_no_candidate_deploys_fails() -> None:
    world = World()
    world.deployer.failing = {"org/a-1b"}
    run_id, _ = await world.ready(THREE[:1])
    await world.tick(4)
    [failed] = [e.payload for e in world.events.of("run.failed", run_id)]
    assert isinstance(failed, RunFailed)
    assert failed.reason is RunFailureReason.NO_CANDIDATE_DEPLOYED


async def test_a_deployment_that_never_gets_ready_times_out() -> None:
    world = World(deploy_timeout_s=5)
    world.deployer.start_polls = 1000
    run_id, _ = await world.ready(THREE[:1])
    await world.tick(7)
    [failed] = [e.payload for e in world.events.of("nim.failed", run_id)]
    assert isinstance(failed, NimFailed)
    assert failed.reason is NimFailureReason.TIMED_OUT
    assert world.live_deployments(run_id) == []


async def test_unreachable_nmp_is_waited_out(world: World) -> None:
    run_id, _ = await world.ready(THREE[:1])
    world.deployer.unreachable = True
    await world.tick(3)
    assert world.deployer.creates == []
    world.deployer.unreachable = False
    await world.tick(2)
    assert len(world.ups(run_id)) == 1


async def test_a_candidate_larger_than_the_budget_fails_at_once() -> None:
    world = World(budget=2)
    run_id, _ = await world.ready([candidate("org/huge-70b", gpus=4), candidate("org/a-1b")])
    await world.tick()
    [failed] = [e.payload for e in world.events.of("nim.failed", run_id)]
    assert isinstance(failed, NimFailed)
    assert failed.reason is NimFailureReason.INSUFFICIENT_GPUS
    assert world.deployer.creates == [
        world.repository.records[f"{run_id}:org/a-1b"].deployment_name
    ]


async def test_serving_candidates_are_removed_when_their_work_is_overdue() -> None:
    world = World(work_timeout_s=10)
    run_id, _ = await world.ready(THREE[:1])
    await world.tick(2)
    await world.tick(11)
    [down] = [e.payload for e in world.events.of("nim.down", run_id)]
    assert isinstance(down, NimDown)
    assert down.reason is NimDownReason.FAILED
    [completed] = [e.payload for e in world.events.of("run.completed", run_id)]
    assert isinstance(completed, RunCompleted)
    assert completed.leaderboard.entries[0].error is not None
    assert "within 10s" in completed.leaderboard.entries[0].error


async def test_cancel_drops_the_queue_and_removes_every_deployment() -> None:
    world = World(budget=2)
    world.deployer.slow = {"org/b-1b": 100}
    run_id, _ = await world.ready(THREE)
    await world.tick(3)  # a is up, b still starting, c queued
    assert [up.candidate.model_name for up in world.ups(run_id)] == ["org/a-1b"]
    await world.service.on_run_cancelled(cancel_event(run_id))
    await world.tick(2)
    assert world.live_deployments(run_id) == []
    downs = [e.payload for e in world.events.of("nim.down", run_id)]
    fails = [e.payload for e in world.events.of("nim.failed", run_id)]
    assert [(d.candidate_model, d.reason) for d in downs] == [("org/a-1b", NimDownReason.CANCELLED)]
    assert [(f.candidate_model, f.reason) for f in fails] == [
        ("org/b-1b", NimFailureReason.CANCELLED)
    ]
    phases = {r.model: r.phase for r in world.repository.records.values()}
    assert phases["org/c-1b"] is Phase.DROPPED
    [failed] = [e.payload for e in world.events.of("run.failed", run_id)]
    assert isinstance(failed, RunFailed)
    assert failed.reason is RunFailureReason.CANCELLED
    await world.tick(3)
    assert len(world.deployer.creates) == 2, "nothing more is scheduled for the run"


async def test_a_cancel_that_overtakes_the_datasets_wins(world: World) -> None:
    run_id = uuid4()
    await world.service.on_run_cancelled(cancel_event(run_id))
    await world.tick()
    assert len(world.events.of("run.failed", run_id)) == 1
    await world.service.on_dataset_ready(ready_event(run_id, THREE))
    await world.tick(3)
    assert world.deployer.creates == []
    assert len(world.events.of("run.failed", run_id)) == 1


async def test_dataset_failed_fails_the_run(world: World) -> None:
    run_id = uuid4()
    await world.service.on_dataset_failed(dataset_failed_event(run_id))
    await world.tick()
    [failed] = [e.payload for e in world.events.of("run.failed", run_id)]
    assert isinstance(failed, RunFailed)
    assert (failed.reason, failed.message, failed.stage) == (
        RunFailureReason.DATASET_FAILED,
        "too few records",
        "datasets",
    )


async def test_stale_events_are_logged_and_ignored(world: World) -> None:
    await world.service.on_eval_done(eval_done(uuid4(), "org/nobody-1b", EvalType.BASE))
    run_id, _ = await world.ready(THREE[:1])
    await world.service.on_eval_done(eval_done(run_id, "org/not-a-candidate", EvalType.BASE))
    await world.tick(2)
    assert len(world.ups(run_id)) == 1


async def test_a_redelivered_dataset_ready_plans_nothing_new(world: World) -> None:
    run_id, ready = await world.ready(THREE[:1])
    await world.tick(2)
    await world.service.on_dataset_ready(ready)
    await world.tick(2)
    assert len(world.deployer.creates) == 1
    assert len(world.ups(run_id)) == 1


async def test_a_restart_resumes_the_wait_and_never_deploys_twice() -> None:
    world = World()
    world.deployer.start_polls = 2
    run_id, _ = await world.ready(THREE[:1])
    await world.tick()
    assert len(world.deployer.creates) == 1
    world.restart()
    await world.tick(3)
    assert len(world.deployer.creates) == 1
    assert len(world.ups(run_id)) == 1


async def test_a_lost_grant_record_adopts_the_existing_deployment() -> None:
    world = World()
    world.deployer.start_polls = 2
    run_id, _ = await world.ready(THREE[:1])
    await world.tick()  # granted and created
    record = world.repository.records[f"{run_id}:org/a-1b"]
    # As if the process died between the create call and storing that it was made.
    world.repository.records[record.key] = record.model_copy(update={"created": False})
    world.restart()
    await world.tick(3)
    assert world.deployer.creates == [record.deployment_name] * 2
    assert len(world.deployer.deployments) == 1
    assert len(world.ups(run_id)) == 1


async def test_a_crash_between_publish_and_store_republishes_the_same_event() -> None:
    world = World()
    run_id, _ = await world.ready(THREE[:1])
    await world.tick()
    world.repository.fail_next_saves = 1
    with pytest.raises(ConnectionError):
        await world.tick()  # nim.up published, storing UP fails
    await world.tick()
    first, again = world.events.of("nim.up", run_id)
    assert first.event_id == again.event_id


async def test_only_the_lease_holder_schedules(world: World) -> None:
    world.lease.leading = False
    await world.ready(THREE)
    await world.service.run_once()
    assert world.deployer.creates == []
    world.lease.leading = True
    await world.service.run_once()
    assert len(world.deployer.creates) == 3
    status = await world.service.status()
    assert (status.leader, status.gpus_in_use, status.budget) == (True, 3, 4)
    in_flight = await world.service.in_flight()
    assert {work.kind for work in in_flight} == {"deployment"}
    assert len(in_flight) == 3


async def test_a_scheduler_that_lost_its_lease_mid_pass_grants_nothing(world: World) -> None:
    run_id, _ = await world.ready(THREE[:1])
    world.lease.leading = False  # lapsed while the pass was busy with NMP
    await world.reconciler.tick()  # a pass begun in tenure 1
    assert world.deployer.creates == []
    world.lease.leading = True
    await world.tick(2)
    assert len(world.ups(run_id)) == 1


async def test_a_pass_begun_in_a_tenure_that_ended_grants_nothing_even_if_the_lease_came_back(
    world: World,
) -> None:
    await world.ready(THREE[:1])
    await world.lease.hold()  # tenure 1
    world.lease.leading = False  # lapsed during the pass, and won back: tenure 2
    world.lease.leading = True
    await world.reconciler.tick()
    assert world.deployer.creates == [], "another scheduler may have granted in between"
    await world.tick()
    assert len(world.deployer.creates) == 1


# --- The run's own judge ----------------------------------------------------------------------

JUDGE = candidate("org/judge-70b", gpus=2)


async def test_a_runs_own_judge_is_deployed_first_and_candidates_wait_until_it_serves() -> None:
    world = World(budget=4, judge=JUDGE)
    run_id, _ = await world.ready(THREE)
    await world.tick()
    assert [world.deployer.deployments[n].model for n in world.deployer.creates] == [
        "org/judge-70b"
    ]
    await world.tick()
    [judge_up] = world.ups(run_id)
    assert judge_up.role is DeploymentRole.JUDGE
    assert judge_up.deployment.model_id == "org/judge-70b"
    await world.tick(2)
    candidates = [up for up in world.ups(run_id) if up.role is DeploymentRole.CANDIDATE]
    assert [up.candidate.model_name for up in candidates] == ["org/a-1b", "org/b-1b"]
    # Every evaluation of a candidate asks the judge this run deployed.
    assert {up.context.config.evaluation.judge_model for up in candidates} == {"org/judge-70b"}


async def test_the_judge_takes_its_gpus_from_the_budget() -> None:
    world = World(budget=3, judge=JUDGE)
    run_id, _ = await world.ready(THREE)
    for model in ("org/a-1b", "org/b-1b", "org/c-1b"):
        await world.tick(3)
        await world.evaluate(run_id, model)
    await world.tick(3)
    assert world.deployer.peak_gpus == 3  # the judge's two and one candidate at a time
    assert world.events.of("run.completed", run_id)


async def test_the_judge_goes_once_every_candidate_has_ended_and_is_not_on_the_leaderboard() -> (
    None
):
    world = World(judge=JUDGE)
    run_id, _ = await world.ready(THREE[:2])
    await world.tick(4)
    await world.evaluate(run_id, "org/a-1b")
    await world.tick()
    assert any("judge" in name for name in world.live_deployments(run_id))
    await world.evaluate(run_id, "org/b-1b")
    await world.tick(2)
    assert world.live_deployments(run_id) == []
    downs = [e.payload.candidate_model for e in world.events.of("nim.down", run_id)]
    assert sorted(downs) == ["org/a-1b", "org/b-1b", "org/judge-70b"]
    [completed] = [e.payload for e in world.events.of("run.completed", run_id)]
    assert isinstance(completed, RunCompleted)
    assert {e.candidate_model for e in completed.leaderboard.entries} == {"org/a-1b", "org/b-1b"}


async def test_a_judge_that_cannot_be_deployed_fails_the_run_and_says_so() -> None:
    world = World(judge=JUDGE)
    world.deployer.failing.add("org/judge-70b")
    run_id, _ = await world.ready(THREE)
    await world.tick(4)
    assert [up for up in world.ups(run_id) if up.role is DeploymentRole.CANDIDATE] == []
    assert world.live_deployments(run_id) == []
    [failed] = [e.payload for e in world.events.of("run.failed", run_id)]
    assert isinstance(failed, RunFailed)
    assert failed.reason is RunFailureReason.NO_CANDIDATE_DEPLOYED
    assert "judge org/judge-70b could not be deployed" in failed.message


async def test_cancelling_a_run_removes_its_judge_with_its_candidates() -> None:
    world = World(judge=JUDGE)
    run_id, _ = await world.ready(THREE[:2])
    await world.tick(4)
    assert len(world.live_deployments(run_id)) == 3
    await world.service.on_run_cancelled(cancel_event(run_id))
    await world.tick(2)
    assert world.live_deployments(run_id) == []
    assert world.events.of("run.failed", run_id)


async def test_the_runs_judge_model_is_the_one_deployed() -> None:
    world = World(judge=JUDGE)
    run_id = uuid4()
    await world.service.on_dataset_ready(ready_event(run_id, THREE[:1], judge_model="org/j-8b"))
    await world.tick(2)
    [judge_up] = world.ups(run_id)
    assert (judge_up.role, judge_up.candidate.model_name) == (DeploymentRole.JUDGE, "org/j-8b")
    assert judge_up.candidate.gpus == 2


async def test_without_a_judge_setting_only_candidates_are_deployed(world: World) -> None:
    run_id, _ = await world.ready(THREE)
    await world.tick(2)
    assert {up.role for up in world.ups(run_id)} == {DeploymentRole.CANDIDATE}


async def test_an_external_candidate_serves_at_once_without_gpus_or_nmp() -> None:
    world = World(budget=1)
    run_id, ready = await world.ready([candidate("org/a-1b"), HOSTED])
    await world.tick()
    ups = {up.candidate.model_name: up for up in world.ups(run_id)}
    assert list(ups) == ["org/hosted-8b"], "served in the first pass, before any deployment"
    hosted = ups["org/hosted-8b"].deployment
    assert (hosted.base_url, hosted.model_id) == ("https://api.example.com/v1", "hosted-8b-v2")
    assert ups["org/hosted-8b"].context == ready.payload.context
    await world.tick()
    assert [name for name in world.deployer.creates if "hosted" in name] == []
    assert world.deployer.peak_gpus == 1, "its 8 GPUs never counted against the budget of 1"


async def test_an_external_candidate_ends_when_its_work_is_done_and_is_on_the_leaderboard() -> None:
    world = World()
    run_id, _ = await world.ready([candidate("org/a-1b"), HOSTED])
    await world.tick(2)
    await world.evaluate(run_id, "org/hosted-8b")
    await world.evaluate(run_id, "org/a-1b")
    await world.tick(2)
    downs = {e.payload.candidate_model: e.payload for e in world.events.of("nim.down", run_id)}
    assert downs["org/hosted-8b"].reason is NimDownReason.FINISHED
    assert not any("hosted" in name for name in world.deployer.deletes)
    [completed] = [e.payload for e in world.events.of("run.completed", run_id)]
    assert isinstance(completed, RunCompleted)
    external = {e.candidate_model: e.external for e in completed.leaderboard.entries}
    assert external == {"org/a-1b": False, "org/hosted-8b": True}


async def test_cancelling_a_run_ends_its_external_candidate_without_asking_nmp() -> None:
    world = World()
    run_id, _ = await world.ready([HOSTED])
    await world.tick()
    await world.service.on_run_cancelled(cancel_event(run_id))
    await world.tick(2)
    [down] = [e.payload for e in world.events.of("nim.down", run_id)]
    assert isinstance(down, NimDown)
    assert down.reason is NimDownReason.CANCELLED
    assert (world.deployer.creates, world.deployer.deletes) == ([], [])
    assert world.events.of("run.failed", run_id)
