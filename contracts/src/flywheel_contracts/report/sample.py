"""A complete, plausible run as events, for the report's tests and previews without a flywheel.

Three candidates as in the demo (the smallest LoRA-customized), every stage timed like a run on
the NMP emulator; the scores rise with model size and with customization.
"""

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from flywheel_contracts import events as ev
from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.run_config import (
    DEMO_CANDIDATES,
    EvalType,
    RunConfig,
    RunOverrides,
    WorkloadType,
)

CANDIDATES = DEMO_CANDIDATES
METRICS = ("function_name_accuracy", "function_name_and_args_accuracy")
EVAL_SIZE = 20
_NS = "dfwbp"
_T0 = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


def _score(name: str, correct: int) -> ev.MetricScore:
    """The share of correct answers with its Wilson 95% interval."""
    n, z = EVAL_SIZE, 1.96
    p = correct / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = max(0.0, center - half), min(1.0, center + half)
    return ev.MetricScore(
        name=name, value=p, n=n, failed=0, ci_low=min(low, p), ci_high=max(high, p)
    )


def _ref(kind: str, workload: str) -> ev.DatasetRef:
    name = f"flywheel-{kind}-{workload}-1768469400"
    return ev.DatasetRef(namespace=_NS, name=name, files_url=f"hf://datasets/{_NS}/{name}")


def sample_run(
    run_id: UUID,
    *,
    workload_id: str = "customer-service-router",
    client_id: str = "acme-support",
    started: datetime = _T0,
) -> list[Envelope[Any]]:
    """Every event of one successful run, in the order they were published."""
    config = RunConfig(workload_id=workload_id, client_id=client_id, candidates=CANDIDATES)
    context = ev.DatasetContext(
        datasets=ev.DatasetRefs(
            eval=_ref("eval", workload_id),
            icl=_ref("icl", workload_id),
            train=_ref("train", workload_id),
        ),
        workload_type=WorkloadType.TOOL_CALLING,
        config=config,
    )
    events: list[Envelope[Any]] = []

    def emit(
        payload: EventPayload,
        producer: str,
        seconds: float,
        cause: Envelope[Any] | None,
        discriminator: str = "",
    ) -> Envelope[Any]:
        envelope = new_event(
            payload,
            producer=producer,
            run_id=run_id,
            cause=cause,
            discriminator=discriminator,
            occurred_at=started + timedelta(seconds=seconds),
        )
        events.append(envelope)
        return envelope

    requested = emit(
        ev.RunRequested(
            workload_id=workload_id,
            client_id=client_id,
            overrides=RunOverrides(candidates=CANDIDATES),
            requested_by="demo",
        ),
        "cli",
        0.0,
        None,
    )
    ready = emit(
        ev.DatasetReady(
            context=context,
            counts=ev.SplitCounts(eval=EVAL_SIZE, icl=EVAL_SIZE, train=1805, val=202),
            stats=ev.FilterStats(
                fetched=2281,
                invalid_format=0,
                unparsable_arguments=0,
                duplicates=254,
                selected=2027,
            ),
        ),
        "datasets",
        18.0,
        requested,
    )
    entries: list[ev.LeaderboardEntry] = []
    for i, candidate in enumerate(CANDIDATES):
        model = candidate.model_name
        deployment = ev.DeploymentRef(
            namespace=_NS,
            name=model.replace("/", "-").replace(".", "-"),
            base_url=f"http://127.0.0.1:87{i:02d}/v1",
            model_id=model,
        )
        # Deployments are requested together once the datasets are ready, and start in turn.
        deploy_requested, up_at = 18.5 + 0.2 * i, 21.0 + 2.0 * i
        up = emit(
            ev.NimUp(candidate=candidate, deployment=deployment, context=context),
            "nim-manager",
            up_at,
            ready,
            model,
        )
        eval_types = [EvalType.BASE, EvalType.ICL]
        finished = up_at
        if candidate.customization_enabled:
            job, adapter = f"cust-{i}", f"{_NS}/customized-{deployment.name}@cust-{i}"
            started_training = emit(
                ev.CustomizationStarted(candidate_model=model, job_id=job, output_model=adapter),
                "customizer",
                up_at + 0.5,
                up,
            )
            emit(
                ev.CustomizationProgress(
                    candidate_model=model,
                    job_id=job,
                    percent=50.0,
                    epochs_completed=1,
                    steps_completed=28,
                    train_loss=0.41,
                ),
                "customizer",
                up_at + 5.0,
                started_training,
            )
            emit(
                ev.CustomizationDone(
                    candidate_model=model,
                    job_id=job,
                    customized_model=adapter,
                    epochs_completed=2,
                    steps_completed=56,
                    runtime_seconds=9.0,
                    deployment=deployment,
                    context=context,
                ),
                "customizer",
                up_at + 9.5,
                started_training,
            )
            eval_types.append(EvalType.CUSTOMIZED)
        results: list[tuple[EvalType, tuple[ev.MetricScore, ...], ev.UsageStats]] = []
        for k, eval_type in enumerate(eval_types):
            begin = up_at + 1.0 + k + (9.5 if eval_type is EvalType.CUSTOMIZED else 0.0)
            job = f"eval-{i}-{eval_type}"
            target = model if eval_type is not EvalType.CUSTOMIZED else f"{model}-lora"
            started_eval = emit(
                ev.EvalStarted(
                    candidate_model=model, eval_type=eval_type, job_id=job, target_model=target
                ),
                "evaluator",
                begin,
                up,
                str(eval_type),
            )
            # Bigger models and adapters answer better; ICL adds a little.
            correct = 5 + 3 * i + k + (10 if eval_type is EvalType.CUSTOMIZED else 0)
            scores = tuple(_score(name, correct - 2 * m) for m, name in enumerate(METRICS))
            prompt = 1680.0 + (350.0 if eval_type is EvalType.ICL else 0.0)
            usage = ev.UsageStats(
                requests=EVAL_SIZE,
                latency_p50_ms=300.0 + 150 * i,
                latency_p95_ms=600.0 + 300 * i,
                prompt_tokens_per_request=prompt,
                completion_tokens_per_request=48.0,
            )
            done_at = begin + 4.0 + i
            emit(
                ev.EvalDone(
                    candidate_model=model,
                    eval_type=eval_type,
                    job_id=job,
                    target_model=target,
                    scores=scores,
                    usage=usage,
                    runtime_seconds=done_at - begin,
                ),
                "evaluator",
                done_at,
                started_eval,
            )
            finished = max(finished, done_at)
            results.append((eval_type, scores, usage))
        deployed = finished + 1.0 - deploy_requested
        emit(
            ev.NimDown(
                candidate_model=model,
                deployment_name=deployment.name,
                reason=ev.NimDownReason.FINISHED,
                deployment_seconds=deployed,
            ),
            "nim-manager",
            finished + 1.0,
            up,
        )
        for eval_type, scores, usage in results:
            tokens = usage.tokens_per_request
            entries.append(
                ev.LeaderboardEntry(
                    candidate_model=model,
                    eval_type=eval_type,
                    scores=scores,
                    latency_p50_ms=usage.latency_p50_ms,
                    latency_p95_ms=usage.latency_p95_ms,
                    tokens_per_request=tokens,
                    cost_per_1k_requests_usd=round(tokens * candidate.price_per_1k_tokens, 9),
                    deployment_seconds=deployed,
                )
            )
    best = max(entries, key=lambda e: e.scores[1].value)
    emit(
        ev.RunCompleted(
            workload_id=workload_id,
            client_id=client_id,
            leaderboard=ev.Leaderboard(
                entries=tuple(entries),
                recommendation=ev.Recommendation(
                    candidate_model=best.candidate_model,
                    eval_type=best.eval_type,
                    reason=f"{METRICS[1]} {best.scores[1].value:.2f} is the highest",
                ),
            ),
        ),
        "nim-manager",
        (max(e.occurred_at for e in events) - started).total_seconds() + 0.5,
        ready,
    )
    return events
