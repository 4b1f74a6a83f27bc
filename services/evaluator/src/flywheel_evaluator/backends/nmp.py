"""The nmp backend: a NeMo Evaluator job per evaluation (E1), polled (E2) until it completes,
its results read (E3, nmp-contract.md 5.2) and the job deleted (E4).

An external candidate (the job's `endpoint`) never goes to NMP, which cannot reach it and must
not be told about it (its URL, headers, key name): the native backend evaluates it.

NMP reports neither latency nor tokens, so a small sample of the records is also sent straight
to the candidate to measure them. NMP reports no interval either: proportions get a Wilson
interval from the value and the scored count, similarity the widest t interval a mean of
scores in [0.1, 1] can have (stats.bounded_mean_interval).
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import structlog

from flywheel_contracts.events import EvalErrorKind, MetricScore
from flywheel_contracts.runtime.nmp import (
    AlreadyExists,
    EvaluationResults,
    NmpClient,
    NmpNotFound,
    NmpRetryableError,
)
from flywheel_contracts.runtime.nmp.jobs import WAITING_JOB_STATUSES
from flywheel_contracts.stats import bounded_mean_interval, wilson
from flywheel_evaluator.backends import Evaluated, JobContext
from flywheel_evaluator.backends.native import NativeBackend, judge_key
from flywheel_evaluator.backends.nmp_config import (
    RESULT_PATHS,
    evaluation_config,
    judge_model,
    mask,
    masking,
    scored_count,
)
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.config import EvaluatorSettings
from flywheel_evaluator.dataset import EvalItem
from flywheel_evaluator.errors import ChatFailed, EvaluationFailed
from flywheel_evaluator.models import EvaluationJob, RecordResult
from flywheel_evaluator.scoring import METRICS, PROPORTIONS, SIMILARITY_SCALE, usage_stats

_log = structlog.get_logger(__name__)

# `unknown` is NMP losing sight of the job for a moment, not an ending: keep polling.
_RUNNING = WAITING_JOB_STATUSES | {"running", "unknown"}
EVALUATION_KEY_FIELD = "flywheel_evaluation"
"""The `custom_fields` entry naming the evaluation an NMP job belongs to."""
_SIMILARITY_FLOOR = 1 / SIMILARITY_SCALE


class NmpBackend:
    def __init__(
        self,
        nmp: NmpClient,
        datasets: DatasetFiles,
        native: NativeBackend,
        settings: EvaluatorSettings,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._nmp = nmp
        self._datasets = datasets
        self._native = native  # its record scorer measures the usage sample
        self._settings = settings
        self._sleep = sleep

    async def evaluate(self, ctx: JobContext) -> Evaluated:
        job = ctx.job
        if job.external:
            return await self._native.evaluate(ctx)
        items = await self._datasets.items(job.dataset, job.limit)
        nmp_job_id = job.nmp_job_id or await self._launch(ctx)
        await ctx.started(nmp_job_id)
        await self._wait(ctx, nmp_job_id)
        results = await self._nmp.evaluator.results(nmp_job_id)
        scores = _scores(job, results, len(items))
        usage = usage_stats(await self._usage_sample(job, items))
        if self._settings.nmp_backend.delete_finished_jobs:
            await self._delete(nmp_job_id)
        return Evaluated(nmp_job_id, scores, usage)

    async def abandon(self, job: EvaluationJob) -> None:
        """A cancelled run's evaluation: stop the NMP job (it holds evaluation workers and
        calls the candidate), then delete it."""
        if job.nmp_job_id is not None:
            await self._nmp.evaluator.stop_job(job.nmp_job_id)
            await self._delete(job.nmp_job_id)

    async def _launch(self, ctx: JobContext) -> str:
        job = ctx.job
        # A remote judge's api_endpoint carries its key: the config goes to NMP only.
        key = judge_key(self._settings)  # read first: an unreadable key file fails the job here
        judge = judge_model(self._settings, job.judge_model)
        config = evaluation_config(job, judge, self._settings.eval_file)
        with masking(key):
            launched = await self._nmp.evaluator.launch(
                config, job.target_model, custom_fields={EVALUATION_KEY_FIELD: job.id}
            )
        if isinstance(launched, AlreadyExists):
            raise EvaluationFailed(
                EvalErrorKind.JOB_FAILED,
                f"NMP refused the job: {mask(launched.detail, key)}",
            )
        # Remembered before anything else: a restart polls this job instead of launching another.
        await ctx.remember_nmp_job(launched.id)
        return launched.id

    async def _wait(self, ctx: JobContext, nmp_job_id: str) -> None:
        while True:
            try:
                status = await self._nmp.evaluator.job_status(nmp_job_id)
            except NmpNotFound as exc:
                raise EvaluationFailed(
                    EvalErrorKind.JOB_FAILED, f"NMP evaluation job {nmp_job_id} disappeared"
                ) from exc
            except NmpRetryableError as exc:
                _log.warning("nmp.poll_failed", nmp_job_id=nmp_job_id, error=str(exc))
            else:
                if status.status == "completed":
                    return
                if status.status not in _RUNNING:
                    details = status.model_dump(mode="json").get("status_details")
                    raise EvaluationFailed(
                        EvalErrorKind.JOB_FAILED,
                        f"NMP evaluation job {nmp_job_id} is {status.status}: {details}",
                    )
                await ctx.progress(round(status.progress), 100)
            await self._sleep(self._settings.nmp_backend.poll_interval_s)

    async def _usage_sample(
        self, job: EvaluationJob, items: Sequence[EvalItem]
    ) -> list[RecordResult]:
        scorer = self._native.scorer(job)
        limit = asyncio.Semaphore(self._settings.chat.concurrency)

        async def measure(item: EvalItem) -> RecordResult:
            async with limit:
                try:
                    answer = await scorer.ask(item)
                except ChatFailed as exc:
                    return RecordResult(
                        index=item.index,
                        ok=False,
                        rate_limited=exc.rate_limited,
                        error=str(exc)[:500],
                        icl_example_ids=item.example_ids,
                    )
            return RecordResult(
                index=item.index,
                ok=True,
                attempts=answer.attempts,
                rate_limited=answer.rate_limited,
                latency_ms=answer.latency_ms,
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
                icl_example_ids=item.example_ids,
            )

        sample = items[: self._settings.nmp_backend.usage_sample]
        return list(await asyncio.gather(*(measure(item) for item in sample)))

    async def _delete(self, nmp_job_id: str) -> None:
        with contextlib.suppress(NmpNotFound):
            await self._nmp.evaluator.delete_job(nmp_job_id)


def _scores(job: EvaluationJob, results: EvaluationResults, n: int) -> tuple[MetricScore, ...]:
    scores = []
    # NMP computes the strict metrics only: the lenient ones read the candidate's content.
    for metric in (m for m in METRICS[job.workload_type] if m in RESULT_PATHS):
        try:
            raw = results.score(*RESULT_PATHS[metric])
            count = scored_count(results, metric)
        except KeyError as exc:
            raise EvaluationFailed(EvalErrorKind.INVALID_RESULTS, str(exc)) from exc
        count = n if count is None else min(count, n)
        if count == 0:
            continue
        if metric in PROPORTIONS:
            value = min(1.0, max(0.0, raw))
            low, high = wilson(round(value * count), count)
        else:
            value = min(1.0, max(_SIMILARITY_FLOOR, raw / SIMILARITY_SCALE))
            low, high = bounded_mean_interval(value, count, _SIMILARITY_FLOOR, 1.0)
        scores.append(
            MetricScore(name=metric, value=value, n=n, failed=n - count, ci_low=low, ci_high=high)
        )
    if not scores:
        raise EvaluationFailed(EvalErrorKind.INVALID_RESULTS, "NMP scored no record")
    return tuple(scores)
