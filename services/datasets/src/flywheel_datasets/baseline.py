"""The production baseline of a run, from the logs themselves: fed a record at a time while the
build reads, never holding a record.

`Tally` describes the selected records (the ones the splits are built from): the production
model of each (`response.model`, else `request.model`), the token usage the responses logged and
the latency the application logged under `metadata.latency_ms`. It keeps counts, sums and one
float per record with a latency (100k records: under a megabyte).

`Volume` measures the workload's logged volume over every record the build read (before any
rule, deduplication or the sample's limit): how many, and the first and last timestamps.
"""

import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any, TypeGuard

from flywheel_contracts.events.baseline import ProductionBaseline, ProductionModel
from flywheel_contracts.stats import percentile
from flywheel_datasets.records import Record

DAY_S = 86_400.0
_MODEL_MAX = 128  # ProductionModel.model is a Label
_EPOCH_MS_FROM = 100_000_000_000  # ingest's rule: epoch numbers from here on are milliseconds


class Tally:
    """Models, usage and latency of the records it is given."""

    def __init__(self) -> None:
        self.records = 0
        self.models: Counter[str] = Counter()
        self.with_usage = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.latencies: list[float] = []

    def add(self, record: Record) -> None:
        self.records += 1
        request, response = _mapping(record.get("request")), _mapping(record.get("response"))
        model = _model(response) or _model(request)
        if model is not None:
            self.models[model] += 1
        usage = _mapping(response.get("usage"))
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if _is_count(prompt) and _is_count(completion):
            self.with_usage += 1
            self.prompt_tokens += prompt
            self.completion_tokens += completion
        latency = _mapping(record.get("metadata")).get("latency_ms")
        if _is_number(latency) and latency >= 0:
            self.latencies.append(float(latency))


class Volume:
    """How many records were read and the span of their timestamps."""

    def __init__(self) -> None:
        self.records = 0
        self.first: float | None = None  # epoch seconds
        self.last: float | None = None

    def add(self, record: Record) -> None:
        self.records += 1
        instant = _epoch_seconds(record.get("timestamp"))
        if instant is None:
            return
        if self.first is None or instant < self.first:
            self.first = instant
        if self.last is None or instant > self.last:
            self.last = instant

    @property
    def requests_per_day(self) -> float | None:
        """Records read over the days their timestamps span, at least one; None without any
        readable timestamp."""
        if self.first is None or self.last is None:
            return None
        days = max(1.0, (self.last - self.first) / DAY_S)
        return self.records / days


def production_baseline(selected: Tally, read: Volume) -> ProductionBaseline:
    # Most records first, ties by name.
    models = sorted(selected.models.items(), key=lambda item: (-item[1], item[0]))
    latencies = selected.latencies
    usage = selected.with_usage
    return ProductionBaseline(
        models=tuple(ProductionModel(model=name, records=n) for name, n in models),
        records=selected.records,
        records_with_usage=usage,
        prompt_tokens_per_request=selected.prompt_tokens / usage if usage else None,
        completion_tokens_per_request=selected.completion_tokens / usage if usage else None,
        records_with_latency=len(latencies),
        latency_p50_ms=percentile(latencies, 50) if latencies else None,
        latency_p95_ms=percentile(latencies, 95) if latencies else None,
        requests_per_day=read.requests_per_day,
    )


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _model(part: dict[str, Any]) -> str | None:
    model = part.get("model")
    if isinstance(model, str) and (model := model.strip()):
        return model[:_MODEL_MAX]
    return None


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _epoch_seconds(value: object) -> float | None:
    """A logged timestamp in epoch seconds: ingest stores millisecond ISO 8601 in UTC; epoch
    seconds or milliseconds are read too. None when unreadable."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if _is_number(value):
        number = float(value)
        return number / 1000 if number >= _EPOCH_MS_FROM else number
    return None
