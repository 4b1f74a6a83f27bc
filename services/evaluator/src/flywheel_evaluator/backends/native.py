"""The native backend: the evaluator sends each record to the candidate itself, with bounded
concurrency, and scores the answers with its own metrics and the judge.

An external candidate (the job's `endpoint`) is called with that endpoint's headers, key (from
the evaluator's environment, endpoint_keys.py), concurrency and timeout; any other candidate
(served by NMP's NIM proxy) with the chat settings' and the NMP platform key and CA bundle when
configured, which go to the NIM proxy only.

Record details are saved in batches as they come, so a restarted instance resumes the
evaluation where the last saved batch ended instead of asking the candidate everything again.
"""

import asyncio
import math
from collections.abc import Sequence

from pydantic import SecretStr

from flywheel_contracts.events import EvalErrorKind
from flywheel_contracts.run_config import ToolChoice
from flywheel_contracts.runtime.secrets import SecretFileError
from flywheel_evaluator.backends import Evaluated, JobContext
from flywheel_evaluator.backends.records import RecordScorer
from flywheel_evaluator.clients.chat import (
    NO_CREDENTIALS,
    ChatEndpoint,
    ChatEndpoints,
    Credentials,
    Limits,
)
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.config import EvaluatorSettings
from flywheel_evaluator.dataset import EvalItem
from flywheel_evaluator.endpoint_keys import endpoint_key
from flywheel_evaluator.errors import EvaluationFailed
from flywheel_evaluator.models import EvaluationJob, RecordResult
from flywheel_evaluator.scoring import aggregate_scores, usage_stats


class NativeBackend:
    def __init__(
        self, datasets: DatasetFiles, endpoints: ChatEndpoints, settings: EvaluatorSettings
    ) -> None:
        self._datasets = datasets
        self._endpoints = endpoints
        self._settings = settings

    def scorer(self, job: EvaluationJob) -> RecordScorer:
        """The job's scorer; EvaluationFailed when an external candidate's key is refused."""
        return RecordScorer(
            candidate=self.candidate(job),
            target_model=job.target_model,
            judge=self._endpoints.get(
                self._settings.judge_base_url, judge_credentials(self._settings)
            ),
            judge_model=job.judge_model or self._settings.judge.model,
            workload=job.workload_type,
            max_tokens=self._settings.chat.max_tokens,
            decide_exact_cases=self._settings.judge.decide_exact_cases,
            tool_schema_compat=job.tool_schema_compat,
            tool_choice=job.endpoint.tool_choice if job.endpoint else ToolChoice.REQUIRED,
        )

    def candidate(self, job: EvaluationJob) -> ChatEndpoint:
        """The endpoint serving the job's candidate, as the job's endpoint (if any) says."""
        external = job.endpoint
        if external is None:
            # An NMP-served candidate, on the NIM proxy: the platform key and CA bundle, if any.
            return self._endpoints.get(job.base_url, nim_credentials(self._settings, job.base_url))
        key = None
        if external.api_key is not None:
            # Checked against the URL the requests go to (job.base_url), whatever the endpoint
            # copy says: that is where the key would be sent.
            key = endpoint_key(self._settings.endpoint_keys, external.api_key, job.base_url)
        credentials = Credentials(
            api_key=key, extra_headers=tuple(sorted(external.headers.items()))
        )
        limits = Limits(concurrency=external.concurrency, timeout_s=external.timeout_seconds)
        return self._endpoints.get(job.base_url, credentials, limits)

    async def evaluate(self, ctx: JobContext) -> Evaluated:
        job = ctx.job
        scorer = self.scorer(job)
        items = await self._datasets.items(job.dataset, job.limit)
        await ctx.started(job.id)
        saved = {r.index: r for r in await ctx.load_records() if r.index < len(items)}
        run = _Run(ctx, scorer, items, saved, self._settings)
        results = await run.all()
        scores = aggregate_scores(job.workload_type, results)
        if not scores:
            raise EvaluationFailed(
                EvalErrorKind.INVALID_RESULTS, f"none of {len(results)} records could be scored"
            )
        return Evaluated(job.id, scores, usage_stats(results))

    async def abandon(self, job: EvaluationJob) -> None:
        """Nothing outside the evaluator: cancelling the task aborted its requests."""


def judge_credentials(settings: EvaluatorSettings) -> Credentials:
    """The judge's key and CA bundle; candidates never get them. A judge on the NIM proxy
    (the default) without a key or CA bundle of its own is called with the platform's."""
    key, ca_bundle = judge_key(settings), settings.judge.ca_bundle
    if settings.nmp.is_nim_proxy(settings.judge_base_url):
        key = key if key is not None else platform_key(settings)
        ca_bundle = ca_bundle if ca_bundle is not None else settings.nmp.ca_bundle
    return Credentials(key, ca_bundle, extra_headers=tuple(settings.judge.headers.items()))


def nim_credentials(settings: EvaluatorSettings, base_url: str) -> Credentials:
    """The platform key and CA bundle (`nmp.api_key`, `nmp.ca_bundle`) for a URL on the NIM
    proxy; nothing for any other URL, so the key never leaves NMP's hosts."""
    if not settings.nmp.is_nim_proxy(base_url):
        return NO_CREDENTIALS
    return Credentials(platform_key(settings), settings.nmp.ca_bundle)


class _Run:
    """The records still to score, a fixed pool of workers, and the failure budget."""

    def __init__(
        self,
        ctx: JobContext,
        scorer: RecordScorer,
        items: Sequence[EvalItem],
        saved: dict[int, RecordResult],
        settings: EvaluatorSettings,
    ) -> None:
        self._ctx = ctx
        self._scorer = scorer
        self._items = items
        self._results = dict(saved)
        self._todo = iter([item for item in items if item.index not in saved])
        self._unsaved: list[RecordResult] = []
        self._batch = settings.worker.records_batch
        self._concurrency = scorer.concurrency
        self._allowed_failures = math.floor(settings.chat.max_failure_ratio * len(items))
        self._failures = sum(not r.ok for r in saved.values())

    async def all(self) -> list[RecordResult]:
        workers = min(self._concurrency, len(self._items) - len(self._results))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(self._work())
        except* EvaluationFailed as ended:
            # One record's answer ended the evaluation (rate limited, schemas refused): the
            # group cancelled the other requests; the first such error is the outcome.
            raise ended.exceptions[0] from None
        await self._save()
        if self._failures > self._allowed_failures:
            raise EvaluationFailed(
                EvalErrorKind.JOB_FAILED,
                f"{self._failures} requests failed, more than the {self._allowed_failures} "
                f"allowed for {len(self._items)} records; last error: {self._last_error()}",
            )
        return [self._results[item.index] for item in self._items]

    async def _work(self) -> None:
        # Workers share one iterator: next() never awaits, so each record is taken once.
        for item in self._todo:
            if self._failures > self._allowed_failures:
                return
            result = await self._scorer.score(item)
            self._results[item.index] = result
            self._unsaved.append(result)
            self._failures += not result.ok
            if len(self._unsaved) >= self._batch:
                await self._save()

    async def _save(self) -> None:
        batch, self._unsaved = self._unsaved, []
        if batch:
            await self._ctx.save_records(batch)
        await self._ctx.progress(len(self._results), len(self._items))

    def _last_error(self) -> str:
        errors = [r.error for r in self._results.values() if r.error]
        return errors[-1] if errors else "none"


def platform_key(settings: EvaluatorSettings) -> SecretStr | None:
    """The NMP platform key; EvaluationFailed when its file cannot be read (naming the file)."""
    try:
        return settings.nmp.platform_key()
    except SecretFileError as exc:
        raise EvaluationFailed(EvalErrorKind.JOB_FAILED, f"the NMP platform key: {exc}") from None


def judge_key(settings: EvaluatorSettings) -> SecretStr | None:
    """The judge's key; EvaluationFailed when its file cannot be read (naming the file only)."""
    try:
        return settings.judge_key()
    except SecretFileError as exc:
        raise EvaluationFailed(EvalErrorKind.JOB_FAILED, f"the judge's key: {exc}") from None
