"""A complete, plausible run as events, for the report's tests and previews without a flywheel.

Three candidates as in the demo (the smallest LoRA-customized), every stage timed like a run on
the NMP emulator; the scores rise with model size and with customization. Production is a 70B
model whose logged traffic gives the reference row; every candidate saves against it, and the
decision follows the documented rule (lower bound of the interval against the threshold, then
the largest saving).
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
PRODUCTION_MODEL = "meta/llama-3.3-70b-instruct"
PRODUCTION_PRICE_PER_1K_TOKENS = 0.00088
THRESHOLD = 0.6
"""The decision's threshold on the first metric's lower bound."""
BASELINE = ev.ProductionBaseline(
    models=(ev.ProductionModel(model=PRODUCTION_MODEL, records=2027),),
    records=2027,
    records_with_usage=2027,
    prompt_tokens_per_request=1690.0,
    completion_tokens_per_request=55.0,
    records_with_latency=2027,
    latency_p50_ms=1250.0,
    latency_p95_ms=2600.0,
    requests_per_day=2027.0,
)
_DAYS_A_MONTH = 30
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
    production_cost = round(_TOKENS * PRODUCTION_PRICE_PER_1K_TOKENS, 9)
    production_monthly = round(_monthly(production_cost), 2)
    production = ev.ProductionRow(
        baseline=BASELINE,
        price_per_1k_tokens=PRODUCTION_PRICE_PER_1K_TOKENS,
        cost_per_1k_requests_usd=production_cost,
        monthly_cost_usd=production_monthly,
    )

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
            baseline=BASELINE,
        ),
        "datasets",
        18.0,
        requested,
    )
    entries: list[ev.LeaderboardEntry] = []
    adapters: dict[str, str] = {}
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
            adapters[model] = adapter
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
            cost = round(tokens * candidate.price_per_1k_tokens, 9)
            entries.append(
                ev.LeaderboardEntry(
                    candidate_model=model,
                    eval_type=eval_type,
                    scores=scores,
                    latency_p50_ms=usage.latency_p50_ms,
                    latency_p95_ms=usage.latency_p95_ms,
                    tokens_per_request=tokens,
                    cost_per_1k_requests_usd=cost,
                    deployment_seconds=deployed,
                    cost_ratio=round(cost / production_cost, 4),
                    monthly_saving_usd=round(production_monthly - _monthly(cost), 2),
                    latency_p50_ratio=round(usage.latency_p50_ms / _P50, 4),
                    latency_p95_ratio=round(usage.latency_p95_ms / _P95, 4),
                )
            )
    emit(
        ev.RunCompleted(
            workload_id=workload_id,
            client_id=client_id,
            leaderboard=ev.Leaderboard(
                entries=tuple(entries),
                recommendation=_decide(workload_id, entries, adapters),
                production=production,
            ),
        ),
        "nim-manager",
        (max(e.occurred_at for e in events) - started).total_seconds() + 0.5,
        ready,
    )
    return events


_TOKENS = BASELINE.tokens_per_request or 0.0
_P50 = BASELINE.latency_p50_ms or 1.0
_P95 = BASELINE.latency_p95_ms or 1.0


def _monthly(cost_per_1k_requests: float) -> float:
    return cost_per_1k_requests * (BASELINE.requests_per_day or 0.0) / 1000 * _DAYS_A_MONTH


def _decide(
    workload_id: str, entries: list[ev.LeaderboardEntry], adapters: dict[str, str]
) -> ev.Recommendation:
    """The first metric's lower bound against THRESHOLD; of those that clear it, the one that
    saves most."""
    metric = METRICS[0]

    def score(entry: ev.LeaderboardEntry) -> ev.MetricScore:
        return next(s for s in entry.scores if s.name == metric)

    qualified = [e for e in entries if score(e).ci_low >= THRESHOLD]
    best = max(qualified, key=lambda e: e.monthly_saving_usd or 0.0, default=None)
    verdicts = []
    for entry in entries:
        s = score(entry)
        shown = f"{s.value:.2f} (95% CI {s.ci_low:.2f}-{s.ci_high:.2f})"
        shortfall: ev.Shortfall | None = None
        if entry is best:
            detail = f"{shown} clears {THRESHOLD:.2f}"
        elif entry in qualified:
            shortfall, detail = ev.Shortfall.OUTRANKED, f"{shown} clears, but saves less"
        elif s.value >= THRESHOLD:
            shortfall = ev.Shortfall.INTERVAL_TOO_WIDE
            detail = f"{shown}: the interval's lower bound is below {THRESHOLD:.2f}"
        else:
            shortfall, detail = ev.Shortfall.BELOW_THRESHOLD, f"{shown} is below {THRESHOLD:.2f}"
        verdicts.append(
            ev.Verdict(
                candidate_model=entry.candidate_model,
                eval_type=entry.eval_type,
                qualified=entry in qualified,
                shortfall=shortfall,
                detail=detail,
            )
        )
    if best is None:
        return ev.Recommendation(
            candidate_model=None,
            eval_type=None,
            reason=f"Keep {PRODUCTION_MODEL}: no candidate's {metric} clears {THRESHOLD:.2f}.",
            metric=metric,
            threshold=THRESHOLD,
            verdicts=tuple(verdicts),
        )
    s = score(best)
    customized = best.eval_type is EvalType.CUSTOMIZED
    model_id = adapters[best.candidate_model] if customized else best.candidate_model
    return ev.Recommendation(
        candidate_model=best.candidate_model,
        eval_type=best.eval_type,
        reason=(
            f"Switch {workload_id} from {PRODUCTION_MODEL} to {model_id}: {metric} "
            f"{s.value:.2f} (95% CI {s.ci_low:.2f}-{s.ci_high:.2f}, {s.n} records) clears "
            f"{THRESHOLD:.2f}, saving ${best.monthly_saving_usd:,.2f} a month "
            f"({best.cost_ratio or 0:.0%} of the cost) at {best.latency_p95_ratio or 0:.2f}x the "
            "p95 latency."
        ),
        model_id=model_id,
        base_model=best.candidate_model if customized else None,
        metric=metric,
        threshold=THRESHOLD,
        score=s,
        monthly_saving_usd=best.monthly_saving_usd,
        cost_ratio=best.cost_ratio,
        latency_p95_ratio=best.latency_p95_ratio,
        verdicts=tuple(verdicts),
    )
