"""One deterministic example per event type: the golden files, AsyncAPI examples, test fixtures.

The examples tell one run's story, each derived event caused by the one before it, so they also
show how ids, correlation and causation chain.
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from flywheel_contracts import events as ev
from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.run_config import CandidateConfig, EvalType, RunConfig, WorkloadType

RUN_ID = UUID("5f0c6a52-8d1e-4c47-9a43-2b6e1f0d7a10")
_REQUEST_ID = UUID("0b9d7c1e-3f5a-4e2b-8c6d-1a2b3c4d5e6f")
_T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_NS = "dfwbp"
_SMALL = "meta/llama-3.2-1b-instruct"
_ADAPTER = "dfwbp/customized-meta-llama-3.2-1b-instruct@cust-7QvX2kLm9Rt4"


def _at(minutes: float) -> datetime:
    return _T0 + timedelta(minutes=minutes)


def _root(
    payload: EventPayload, producer: str, run_id: UUID | None, event_id: UUID, minutes: float
) -> Envelope[Any]:
    """An event with no cause; fixed ids instead of new_event's random ones."""
    return Envelope[Any](
        event_id=event_id,
        event_type=payload.EVENT_TYPE,
        schema_version=payload.SCHEMA_VERSION,
        occurred_at=_at(minutes),
        run_id=run_id,
        correlation_id=event_id,
        causation_id=None,
        producer=producer,
        payload=payload,
    )


def _after(
    cause: Envelope[Any], payload: EventPayload, producer: str, minutes: float
) -> Envelope[Any]:
    return new_event(
        payload, producer=producer, run_id=RUN_ID, cause=cause, occurred_at=_at(minutes)
    )


CONFIG = RunConfig(
    workload_id="support-agent.route-intent",
    client_id="acme-prod",
    candidates=(
        CandidateConfig(
            model_name=_SMALL,
            tag="1.8.3",
            customization_enabled=True,
            customization_target="meta/llama-3.2-1b-instruct@2.0",
            price_per_1k_tokens=0.0001,
        ),
        CandidateConfig(model_name="meta/llama-3.1-8b-instruct", price_per_1k_tokens=0.0003),
    ),
)

_CONTEXT = ev.DatasetContext(
    datasets=ev.DatasetRefs(
        eval=ev.DatasetRef(
            namespace=_NS,
            name="flywheel-eval-support-agent-route-intent-1748779200",
            files_url="hf://datasets/dfwbp/flywheel-eval-support-agent-route-intent-1748779200",
        ),
        icl=ev.DatasetRef(
            namespace=_NS,
            name="flywheel-icl-support-agent-route-intent-1748779200",
            files_url="hf://datasets/dfwbp/flywheel-icl-support-agent-route-intent-1748779200",
        ),
        train=ev.DatasetRef(
            namespace=_NS,
            name="flywheel-train-support-agent-route-intent-1748779200",
            files_url="hf://datasets/dfwbp/flywheel-train-support-agent-route-intent-1748779200",
        ),
    ),
    workload_type=WorkloadType.TOOL_CALLING,
    config=CONFIG,
)

_DEPLOYMENT = ev.DeploymentRef(
    namespace=_NS,
    name="meta-llama-3.2-1b-instruct",
    base_url="http://127.0.0.1:8000/v1",
    model_id=_SMALL,
)


def _score(name: str, value: float, low: float, high: float) -> ev.MetricScore:
    return ev.MetricScore(name=name, value=value, n=20, failed=1, ci_low=low, ci_high=high)


_SCORES = (
    _score("function_name_accuracy", 0.9, 0.7, 0.97),
    _score("function_name_and_args_accuracy", 0.75, 0.53, 0.89),
)
_BASELINE = ev.ProductionBaseline(
    models=(ev.ProductionModel(model="meta/llama-3.3-70b-instruct", records=500),),
    records=500,
    records_with_usage=500,
    prompt_tokens_per_request=610.0,
    completion_tokens_per_request=72.0,
    records_with_latency=480,
    latency_p50_ms=1210.0,
    latency_p95_ms=2150.0,
    requests_per_day=10.0,
)
_USAGE = ev.UsageStats(
    requests=20,
    latency_p50_ms=182.5,
    latency_p95_ms=410.0,
    prompt_tokens_per_request=612.0,
    completion_tokens_per_request=48.5,
)


def _build() -> dict[str, Envelope[Any]]:
    requested = _root(
        ev.RunRequested(workload_id=CONFIG.workload_id, client_id=CONFIG.client_id),
        "cli",
        RUN_ID,
        _REQUEST_ID,
        0,
    )
    ready = _after(
        requested,
        ev.DatasetReady(
            context=_CONTEXT,
            counts=ev.SplitCounts(eval=20, icl=20, train=432, val=48),
            stats=ev.FilterStats(
                fetched=1000,
                invalid_format=12,
                unparsable_arguments=3,
                duplicates=461,
                selected=500,
                near_duplicates=20,
                leaked=4,
                rules={
                    "no_messages": 5,
                    "invalid_message": 7,
                    "unparsable_arguments": 3,
                    "duplicate": 461,
                    "near_duplicate": 20,
                    "same_conversation_as_eval": 4,
                },
            ),
            baseline=_BASELINE,
        ),
        "datasets",
        1,
    )
    nim_up = _after(
        ready,
        ev.NimUp(candidate=CONFIG.candidates[0], deployment=_DEPLOYMENT, context=_CONTEXT),
        "nim-manager",
        4,
    )
    custom_started = _after(
        nim_up,
        ev.CustomizationStarted(
            candidate_model=_SMALL, job_id="cust-7QvX2kLm9Rt4", output_model=_ADAPTER
        ),
        "customizer",
        4.5,
    )
    custom_done = _after(
        custom_started,
        ev.CustomizationDone(
            candidate_model=_SMALL,
            job_id="cust-7QvX2kLm9Rt4",
            customized_model=_ADAPTER,
            epochs_completed=2,
            steps_completed=54,
            runtime_seconds=640.0,
            deployment=_DEPLOYMENT,
            context=_CONTEXT,
        ),
        "customizer",
        15,
    )
    eval_started = _after(
        nim_up,
        ev.EvalStarted(
            candidate_model=_SMALL,
            eval_type=EvalType.BASE,
            job_id="eval-Kp3Wz8Ym",
            target_model=_SMALL,
        ),
        "evaluator",
        4.5,
    )
    eval_done = _after(
        eval_started,
        ev.EvalDone(
            candidate_model=_SMALL,
            eval_type=EvalType.BASE,
            job_id="eval-Kp3Wz8Ym",
            target_model=_SMALL,
            scores=_SCORES,
            usage=_USAGE,
            runtime_seconds=95.5,
        ),
        "evaluator",
        6,
    )
    nim_down = _after(
        custom_done,
        ev.NimDown(
            candidate_model=_SMALL,
            deployment_name=_DEPLOYMENT.name,
            reason=ev.NimDownReason.FINISHED,
            deployment_seconds=1260.0,
        ),
        "nim-manager",
        25,
    )
    completed = _after(
        nim_down,
        ev.RunCompleted(
            workload_id=CONFIG.workload_id,
            client_id=CONFIG.client_id,
            leaderboard=ev.Leaderboard(
                entries=(
                    ev.LeaderboardEntry(
                        candidate_model=_SMALL,
                        eval_type=EvalType.BASE,
                        scores=_SCORES,
                        latency_p50_ms=182.5,
                        latency_p95_ms=410.0,
                        tokens_per_request=660.5,
                        cost_per_1k_requests_usd=0.066,
                        deployment_seconds=1260.0,
                        cost_ratio=0.11,
                        monthly_saving_usd=160.2,
                        latency_p50_ratio=0.15,
                        latency_p95_ratio=0.19,
                    ),
                    ev.LeaderboardEntry(
                        candidate_model="meta/llama-3.1-8b-instruct",
                        eval_type=EvalType.BASE,
                        error="deployment failed: insufficient GPUs",
                    ),
                ),
                recommendation=ev.Recommendation(
                    candidate_model=_SMALL,
                    eval_type=EvalType.BASE,
                    reason=(
                        "Switch customer-service-router from meta/llama-3.3-70b-instruct to "
                        f"{_SMALL}: function_name_accuracy 0.90 (95% CI 0.70-0.97, 20 records) "
                        "clears 0.70, saving $160.20 a month (11% of the cost) at 0.19x the p95 "
                        "latency; meta/llama-3.1-8b-instruct was not evaluated."
                    ),
                    model_id=_SMALL,
                    metric="function_name_accuracy",
                    threshold=0.7,
                    score=_SCORES[0],
                    monthly_saving_usd=160.2,
                    cost_ratio=0.11,
                    latency_p95_ratio=0.19,
                    verdicts=(
                        ev.Verdict(
                            candidate_model=_SMALL,
                            eval_type=EvalType.BASE,
                            qualified=True,
                            detail="0.90 (95% CI 0.70-0.97) clears 0.70",
                        ),
                        ev.Verdict(
                            candidate_model="meta/llama-3.1-8b-instruct",
                            eval_type=EvalType.BASE,
                            qualified=False,
                            shortfall=ev.Shortfall.NOT_EVALUATED,
                            detail="deployment failed: insufficient GPUs",
                        ),
                    ),
                ),
                production=ev.ProductionRow(
                    baseline=_BASELINE,
                    price_per_1k_tokens=0.00088,
                    cost_per_1k_requests_usd=0.6,
                    monthly_cost_usd=180.0,
                ),
            ),
        ),
        "nim-manager",
        26,
    )
    cancelled = _root(
        ev.RunCancelled(requested_by="alice"),
        "cli",
        RUN_ID,
        UUID("7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"),
        10,
    )
    return {
        envelope.event_type: envelope
        for envelope in (
            requested,
            cancelled,
            ready,
            _after(
                requested,
                ev.DatasetFailed(
                    reason=ev.DatasetFailureReason.NOT_ENOUGH_RECORDS,
                    message="found 12 usable records, need at least 50",
                ),
                "datasets",
                1,
            ),
            nim_up,
            _after(
                ready,
                ev.NimFailed(
                    candidate_model="meta/llama-3.1-8b-instruct",
                    deployment_name="meta-llama-3.1-8b-instruct",
                    reason=ev.NimFailureReason.INSUFFICIENT_GPUS,
                    message="needs 1 GPU, budget of 1 is held by the run's other candidate",
                ),
                "nim-manager",
                4,
            ),
            nim_down,
            custom_started,
            _after(
                custom_started,
                ev.CustomizationProgress(
                    candidate_model=_SMALL,
                    job_id="cust-7QvX2kLm9Rt4",
                    percent=50.0,
                    epochs_completed=1,
                    steps_completed=27,
                    train_loss=0.412,
                ),
                "customizer",
                10,
            ),
            custom_done,
            eval_started,
            _after(
                eval_started,
                ev.EvalProgress(
                    candidate_model=_SMALL,
                    eval_type=EvalType.BASE,
                    job_id="eval-Kp3Wz8Ym",
                    percent=40.0,
                ),
                "evaluator",
                5,
            ),
            eval_done,
            completed,
            _after(
                requested,
                ev.RunFailed(
                    reason=ev.RunFailureReason.DATASET_FAILED,
                    message="found 12 usable records, need at least 50",
                    stage="datasets",
                ),
                "nim-manager",
                1.5,
            ),
            _root(
                ev.ServiceStopping(
                    service="evaluator",
                    instance="evaluator-0/4711",
                    in_flight=(
                        ev.InFlightWork(
                            run_id=RUN_ID, kind="evaluation_job", resource_id="eval-Kp3Wz8Ym"
                        ),
                    ),
                ),
                "evaluator",
                None,
                UUID("1e2d3c4b-5a69-4788-9a0b-c1d2e3f40516"),
                5.5,
            ),
            _root(
                ev.SystemShutdown(requested_by="ops"),
                "cli",
                None,
                UUID("2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6071"),
                30,
            ),
            _after(
                cancelled,
                ev.ResourcesReclaimed(
                    trigger=ev.ReclaimTrigger.RUN_CANCELLED,
                    reason="run cancelled by alice",
                    reclaimed=(
                        ev.ResourceRef(
                            kind=ev.ResourceKind.DEPLOYMENT, id="dfwbp/meta-llama-3.2-1b-instruct"
                        ),
                        ev.ResourceRef(
                            kind=ev.ResourceKind.CUSTOMIZATION_JOB, id="cust-7QvX2kLm9Rt4"
                        ),
                    ),
                    already_gone=(
                        ev.ResourceRef(kind=ev.ResourceKind.EVALUATION_JOB, id="eval-Kp3Wz8Ym"),
                    ),
                ),
                "janitor",
                10.1,
            ),
            _root(
                ev.RecordsIngested(
                    counts=(
                        ev.WorkloadCount(
                            workload_id=CONFIG.workload_id, client_id=CONFIG.client_id, records=480
                        ),
                        ev.WorkloadCount(
                            workload_id="support-agent.answer", client_id="acme-prod", records=20
                        ),
                    ),
                    indexed=500,
                    rejected=2,
                ),
                "ingest",
                None,
                UUID("3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d"),
                -5,
            ),
        )
    }


EXAMPLES: dict[str, Envelope[Any]] = _build()
"""Example envelope per event type."""

REJECTED_RECORD = ev.RejectedRecord.of(
    b'{"workload_id": "support-agent.route-intent", "request": ',
    reason=ev.RejectReason.INVALID_JSON,
    message="Expecting value: line 1 column 57 (char 56)",
    source=ev.SourcePosition(topic="logs.raw", partition=4, offset=18231),
    rejected_at=_at(-5),
)
"""Example message of `logs.rejected`."""
