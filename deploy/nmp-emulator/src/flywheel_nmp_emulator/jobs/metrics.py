"""The evaluator's metrics, scoring one sample at a time and aggregating to NMP's result shape:
metrics[name].scores[score] = {"value": mean, "stats": {"count", "sum", "mean"}}."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Protocol

from flywheel_nmp_emulator.jobs.templates import Template, render_json
from flywheel_nmp_emulator.models.examples import parse_arguments, parse_literal
from flywheel_nmp_emulator.models.instruct import InstructModel


class MetricError(ValueError):
    """A metric config the emulator cannot run."""


class Metric(Protocol):
    def score(self, item: dict[str, Any], sample: dict[str, Any]) -> None: ...
    def result(self) -> dict[str, Any]: ...


class _Scores:
    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}

    def add(self, name: str, value: float) -> None:
        self._values.setdefault(name, []).append(value)

    def declare(self, name: str) -> None:
        self._values.setdefault(name, [])

    def result(self) -> dict[str, Any]:
        scores = {}
        for name, values in self._values.items():
            total = float(sum(values))
            mean = total / len(values) if values else 0.0
            scores[name] = {
                "value": mean,
                "stats": {"count": len(values), "sum": total, "mean": mean},
            }
        return {"scores": scores}


def _calls(value: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(value, str):
        value = parse_literal(value)
    if isinstance(value, dict):
        value = [value]
    calls = []
    for call in value if isinstance(value, list) else []:
        fn = call.get("function", call) if isinstance(call, dict) else {}
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            calls.append((fn["name"], parse_arguments(fn.get("arguments"))))
    return calls


class ToolCallingMetric:
    """Function-name and name+arguments accuracy against the logged production tool calls.
    Calls are compared as a multiset: parallel calls may come in any order."""

    def __init__(self, params: dict[str, Any]) -> None:
        source = params.get("tool_calls_ground_truth")
        if not isinstance(source, str):
            raise MetricError("tool-calling metric needs params.tool_calls_ground_truth")
        self._truth = Template(source)
        self._scores = _Scores()

    def score(self, item: dict[str, Any], sample: dict[str, Any]) -> None:
        truth = _calls(render_json(self._truth, item=item, sample=sample))
        message = sample["response"]["choices"][0]["message"]
        predicted = _calls(message.get("tool_calls") or [])
        names_match = Counter(n for n, _ in truth) == Counter(n for n, _ in predicted)
        canon = sorted(repr(sorted(a.items())) + n for n, a in truth)
        args_match = names_match and canon == sorted(
            repr(sorted(a.items())) + n for n, a in predicted
        )
        self._scores.add("function_name_accuracy", float(names_match))
        self._scores.add("function_name_and_args_accuracy", float(args_match))

    def result(self) -> dict[str, Any]:
        return self._scores.result()


class LlmJudgeMetric:
    """Renders the judge prompt from item and sample, asks the judge model, parses each score
    with its regex."""

    def __init__(self, params: dict[str, Any], judge: InstructModel) -> None:
        template = params.get("template", {})
        messages = template.get("messages") if isinstance(template, dict) else None
        if not isinstance(messages, list) or not messages:
            raise MetricError("llm-judge metric needs params.template.messages")
        self._messages = [
            (m.get("role", "user"), Template(str(m.get("content", "")))) for m in messages
        ]
        self._judge = judge
        self._parsers: dict[str, tuple[re.Pattern[str], str]] = {}
        for name, spec in (params.get("scores") or {}).items():
            parser = spec.get("parser", {}) if isinstance(spec, dict) else {}
            pattern = parser.get("pattern") if isinstance(parser, dict) else None
            if not isinstance(pattern, str):
                raise MetricError(f"llm-judge score {name!r} needs parser.pattern")
            self._parsers[name] = (re.compile(pattern), str(spec.get("type", "float")))
        self._scores = _Scores()
        for name in self._parsers:
            self._scores.declare(name)

    def score(self, item: dict[str, Any], sample: dict[str, Any]) -> None:
        prompt = [
            {"role": role, "content": t.render(item=item, sample=sample)}
            for role, t in self._messages
        ]
        reply = self._judge.respond(prompt).content or ""
        for name, (pattern, kind) in self._parsers.items():
            match = pattern.search(reply)
            if match is None:
                continue  # NMP leaves an unparsable judgement out of the score
            raw = match.group(1) if match.groups() else match.group(0)
            try:
                self._scores.add(name, float(int(raw)) if kind == "int" else float(raw))
            except ValueError:
                continue

    def result(self) -> dict[str, Any]:
        return self._scores.result()
