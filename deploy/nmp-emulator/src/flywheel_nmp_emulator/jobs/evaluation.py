"""Evaluation jobs: created -> running -> completed | failed, or cancelled on request. NMP may
also report "pending" while a job waits; the emulator needs no wait, so it goes straight on.

The job really runs: it reads the dataset from the emulator's Data Store, renders each record
through the task's template, asks the target model (the same code the NIM proxy serves), and
scores the answers with the configured metrics.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from flywheel_nmp_emulator.ids import new_id
from flywheel_nmp_emulator.jobs.files import DatasetFileError, parse_files_url, read_file
from flywheel_nmp_emulator.jobs.metrics import (
    LlmJudgeMetric,
    Metric,
    MetricError,
    ToolCallingMetric,
)
from flywheel_nmp_emulator.jobs.templates import Template, TemplateError, render_json
from flywheel_nmp_emulator.models.instruct import InstructModel
from flywheel_nmp_emulator.models.lora import read_jsonl
from flywheel_nmp_emulator.nim_format import chat_response, prompt_chars
from flywheel_nmp_emulator.real.routing import real_route
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import EvaluationJob

log = logging.getLogger(__name__)

# Records scored between two yields to the event loop, so the API stays responsive.
CHUNK = 16


class EvaluationError(RuntimeError):
    """Why a job failed, in words for status_details.message."""


@dataclass
class Run:
    """One evaluation in flight (not persisted: a restarted emulator re-runs it)."""

    total: int = 0
    done: int = 0
    results: dict[str, Any] | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.results is not None or self.error is not None


def target_model_id(target: dict[str, Any]) -> str:
    model = target.get("model")
    if isinstance(model, dict):
        endpoint = model.get("api_endpoint", {})
        model = endpoint.get("model_id") if isinstance(endpoint, dict) else None
    if not isinstance(model, str) or not model:
        raise EvaluationError("target.model must name a model")
    return model


def _judge_id(params: dict[str, Any]) -> str:
    model = params.get("model")
    if isinstance(model, dict):
        endpoint = model.get("api_endpoint", {})
        model = endpoint.get("model_id") if isinstance(endpoint, dict) else None
    if not isinstance(model, str) or not model:
        raise MetricError("metric params.model must name the judge")
    return model


class _Task:
    def __init__(self, emu: Emulator, name: str, spec: dict[str, Any]) -> None:
        if spec.get("type") != "chat-completion":
            raise EvaluationError(f"task {name}: only type 'chat-completion' is supported")
        dataset = spec.get("dataset") or {}
        ns, repo, path = parse_files_url(str(dataset.get("files_url", "")))
        if not path:
            raise EvaluationError(f"task {name}: dataset.files_url must name a file")
        records = read_jsonl(read_file(emu.store, ns, repo, path))
        limit = dataset.get("limit")
        self.records = records[: int(limit)] if isinstance(limit, int) and limit >= 0 else records
        template = (spec.get("params") or {}).get("template") or {}
        if "messages" not in template:
            raise EvaluationError(f"task {name}: params.template.messages is required")
        self.templates = {k: Template(v) for k, v in template.items() if isinstance(v, str)}
        self.metrics: dict[str, Metric] = {}
        for metric_name, metric in (spec.get("metrics") or {}).items():
            kind, params = metric.get("type"), metric.get("params") or {}
            if kind == "tool-calling":
                self.metrics[metric_name] = ToolCallingMetric(params)
            elif kind == "llm-judge":
                judge = emu.catalog.judge_model(_judge_id(params))
                self.metrics[metric_name] = LlmJudgeMetric(params, judge)
            else:
                raise EvaluationError(f"task {name}: unsupported metric type {kind!r}")

    def run_one(self, model: InstructModel, model_id: str, item: dict[str, Any]) -> None:
        request = {k: render_json(t, item=item) for k, t in self.templates.items()}
        messages = request.get("messages")
        if not isinstance(messages, list):
            raise EvaluationError("the messages template did not render to a list of messages")
        tools = request.get("tools")
        reply = model.respond(
            messages, tools if isinstance(tools, list) else None, request.get("tool_choice")
        )
        sample = {
            "response": chat_response(model_id, reply, prompt_chars(messages, tools)),
            "output_text": reply.content or "",
        }
        for metric in self.metrics.values():
            metric.score(item, sample)

    def result(self) -> dict[str, Any]:
        return {"metrics": {name: m.result() for name, m in self.metrics.items()}}


async def run(emu: Emulator, job: EvaluationJob, progress: Run) -> None:
    """Compute the job's results into `progress` (never raises: failures land in .error)."""
    try:
        model_id = target_model_id(job.target)
        if emu.real is not None and real_route(
            model_id, emu.real.settings.model_id, emu.state.deployments, emu.state.models
        ):
            # Jobs score in-process with the heuristic models; answering for a real model
            # with them would report made-up scores under its name.
            raise EvaluationError(
                f"model {model_id} is served by the real backend, which evaluation jobs do not "
                "reach yet: evaluate it through the NIM proxy (Flywheel's native evaluator)"
            )
        model = emu.catalog.chat_model(model_id)
        if model is None:
            raise EvaluationError(
                f"model {model_id} is not served by the NIM proxy (not deployed?)"
            )
        tasks_spec = job.config.get("tasks")
        if not isinstance(tasks_spec, dict) or not tasks_spec:
            raise EvaluationError("config.tasks must be a non-empty object")
        tasks = {name: _Task(emu, name, spec) for name, spec in tasks_spec.items()}
        progress.total = sum(len(t.records) for t in tasks.values())
        for task in tasks.values():
            for i, item in enumerate(task.records):
                task.run_one(model, model_id, item)
                progress.done += 1
                if i % CHUNK == CHUNK - 1:
                    await asyncio.sleep(0)
        progress.results = {"tasks": {name: t.result() for name, t in tasks.items()}}
    except (
        EvaluationError,
        DatasetFileError,
        MetricError,
        TemplateError,
        ValueError,
        KeyError,
        TypeError,
    ) as exc:
        progress.error = str(exc) or type(exc).__name__
    except Exception as exc:  # a bug must fail the job visibly, not leave it running forever
        log.exception("evaluation %s crashed", job.id)
        progress.error = f"internal error: {exc!r}"


class Evaluations:
    """Runs evaluation jobs and moves them through their states."""

    def __init__(self, emu: Emulator) -> None:
        self._emu = emu
        self._runs: dict[str, Run] = {}

    def _launch(self, job: EvaluationJob) -> Run:
        progress = Run()
        progress.task = asyncio.get_running_loop().create_task(run(self._emu, job, progress))
        self._runs[job.id] = progress
        return progress

    def advance(self, now: float) -> bool:
        emu = self._emu
        changed = False
        for job in emu.state.evaluation_jobs.values():
            if job.status == "created":
                job.status = "running"
                job.started_at = now
                job.message = "evaluating"
                emu.store.record("evaluation", job.id, "started")
                self._launch(job)
                changed = True
            elif job.status != "running":
                continue
            # A job running before a restart has no run in this process: start it again.
            progress = self._runs.get(job.id) or self._launch(job)
            minimum = progress.total * emu.timings.eval_seconds_per_record
            elapsed = now - (job.started_at or now)
            fraction = progress.done / progress.total if progress.total else 0.0
            if minimum > 0:
                fraction = min(fraction, elapsed / minimum)
            # Progress alone is not worth a write of the state file; the next change saves it.
            job.progress = round(100 * fraction, 1)
            if not progress.finished or elapsed < minimum:
                continue
            job.finished_at = now
            job.records = progress.total
            if progress.error is None and emu.faults.job_fails(
                "evaluation", target_model_id(job.target)
            ):
                progress.error = "the evaluation failed (injected fault)"
            if progress.error is not None:
                job.status = "failed"
                job.message = progress.error
                emu.store.record("evaluation", job.id, "failed", progress.error)
            else:
                job.status = "completed"
                job.progress = 100.0
                job.message = f"evaluated {progress.total} records"
                job.results = progress.results
                job.result_id = new_id("eval-result")
                emu.store.record("evaluation", job.id, "completed")
            del self._runs[job.id]
            changed = True
        return changed

    def forget(self, job_id: str) -> None:
        """Stop and drop the run of a deleted job."""
        progress = self._runs.pop(job_id, None)
        if progress is not None and progress.task is not None:
            progress.task.cancel()

    async def close(self) -> None:
        for job_id in list(self._runs):
            self.forget(job_id)
