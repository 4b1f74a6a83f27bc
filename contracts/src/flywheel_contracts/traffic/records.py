"""Log records of the simulated support agent, one JSON line per LLM call.

Records follow the blueprint's log format (``workload_id``, ``client_id``, ``timestamp``, the
OpenAI ``request`` and ``response``) plus an optional ``metadata`` object. Everything is drawn from
one ``random.Random(seed)`` in a fixed order and the clock starts at a fixed instant, so the same
seed and config give byte-identical output on any machine.

Lines are assembled from pre-encoded JSON fragments: the tool schemas alone are ~6 KB and the same
in every record of a workload, and re-encoding them each time would cost more than everything else.
"""

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from random import Random
from typing import Any, Final, Literal, get_args

from flywheel_contracts.traffic.catalog import TOOLS
from flywheel_contracts.traffic.conversation import Turn, TurnSource
from flywheel_contracts.traffic.workloads import WORKLOAD_IDS, WORKLOADS, Workload

TimestampFormat = Literal["s", "ms", "iso", "mixed"]
"""Epoch seconds, epoch milliseconds, ISO 8601 in UTC with milliseconds, or the three in turn."""
TIMESTAMP_FORMATS: Final[tuple[str, ...]] = get_args(TimestampFormat)

DEFAULT_MODEL: Final = "meta/llama-3.3-70b-instruct"
DEFAULT_CLIENT_ID: Final = "acme-support"
DEFAULT_START: Final = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.UTC)
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAY_MS: Final = 86_400_000
_MEAN_GAP_MS: Final = 200  # ~18,000 calls an hour

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    """What to generate, besides the record count and the seed."""

    workloads: tuple[str, ...] = WORKLOAD_IDS
    client_ids: tuple[str, ...] = (DEFAULT_CLIENT_ID,)
    start: dt.datetime = DEFAULT_START
    timestamp_format: TimestampFormat = "s"
    model: str = DEFAULT_MODEL
    metadata: bool = True  # conversation id, turn, latency and tags under "metadata"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.workloads) - set(WORKLOADS))
        if not self.workloads or unknown:
            raise ValueError(
                f"workloads must be a non-empty subset of {WORKLOAD_IDS}; unknown: {unknown}"
            )
        if not self.client_ids or not all(self.client_ids):
            raise ValueError("client_ids must be non-empty strings")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.timestamp_format not in TIMESTAMP_FORMATS:
            raise ValueError(f"timestamp_format must be one of {TIMESTAMP_FORMATS}")


@dataclass(slots=True)
class _Clock:
    """Simulated time in epoch milliseconds; the calendar day is kept for the prompts."""

    now_ms: int
    today: dt.date = field(init=False)
    next_day_ms: int = field(init=False)

    def __post_init__(self) -> None:
        self._new_day()

    def advance(self, gap_ms: int) -> None:
        self.now_ms += gap_ms
        if self.now_ms >= self.next_day_ms:
            self._new_day()

    def _new_day(self) -> None:
        self.today = (_EPOCH + dt.timedelta(milliseconds=self.now_ms)).date()
        self.next_day_ms = (self.now_ms // _DAY_MS + 1) * _DAY_MS


@dataclass(frozen=True, slots=True)
class _EncodedWorkload:
    id_json: str
    request_tail: str  # the request members after "messages", closing brace included

    @classmethod
    def of(cls, workload: Workload) -> "_EncodedWorkload":
        tail: dict[str, Any] = {}
        if workload.tools:
            tail["tools"] = [TOOLS[t] for t in workload.tools]
            tail["tool_choice"] = "auto"
        tail["temperature"] = workload.temperature
        tail["max_tokens"] = workload.max_tokens
        return cls(_encode(workload.workload_id), "," + _encode(tail)[1:])


@dataclass(slots=True)
class _Renderer:
    """Turns drawn by a ``TurnSource`` become log lines, on a clock that moves forward."""

    config: TrafficConfig
    rng: Random
    clock: _Clock
    workloads: dict[str, _EncodedWorkload] = field(init=False)
    model_json: str = field(init=False)
    client_json: dict[str, str] = field(init=False)
    system_json: dict[str, str] = field(default_factory=dict)  # per workload, for clock.today
    system_day: dt.date | None = None

    def __post_init__(self) -> None:
        self.workloads = {w: _EncodedWorkload.of(WORKLOADS[w]) for w in self.config.workloads}
        self.model_json = _encode(self.config.model)
        self.client_json = {c: _encode(c) for c in self.config.client_ids}

    def line(self, turn: Turn, index: int) -> str:
        """The record of one call of ``turn``; ``index`` picks the timestamp form when mixed."""
        now_ms, model = self.clock.now_ms, self.model_json
        encoded = self.workloads[turn.workload.workload_id]
        system = self._system(turn.workload)
        prompt_tokens = (
            len(system) + len(turn.history_json) + len(turn.user_json) + len(encoded.request_tail)
        ) // 4
        completion_tokens = len(turn.reply_json) // 4
        finish = "tool_calls" if turn.calls else "stop"
        response_id = self.rng.getrandbits(96)
        metadata = ""
        if self.config.metadata:
            latency_ms = 150 + 20 * completion_tokens + self.rng.randrange(400)
            metadata = (
                f',"metadata":{{"conversation_id":"{turn.conversation_id}","turn":{turn.number},'
                f'"latency_ms":{latency_ms},"tags":["{turn.channel}","prod"]}}'
            )
        # One f-string: records are ~5 KB and every further concatenation copies all of it.
        return (
            f'{{"workload_id":{encoded.id_json},"client_id":{self.client_json[turn.client_id]},'
            f'"timestamp":{self._timestamp(now_ms, index)},'
            f'"request":{{"model":{model},"messages":[{system},{turn.history_json}{turn.user_json}]'
            f"{encoded.request_tail},"
            f'"response":{{"id":"chatcmpl-{response_id:024x}","object":"chat.completion",'
            f'"created":{now_ms // 1000},"model":{model},'
            f'"choices":[{{"index":0,"message":{turn.reply_json},"finish_reason":"{finish}"}}],'
            f'"usage":{{"prompt_tokens":{prompt_tokens},"completion_tokens":{completion_tokens},'
            f'"total_tokens":{prompt_tokens + completion_tokens}}}}}{metadata}}}'
        )

    def _system(self, workload: Workload) -> str:
        if self.system_day != self.clock.today:
            self.system_day, self.system_json = self.clock.today, {}
        system = self.system_json.get(workload.workload_id)
        if system is None:
            prompt = workload.system_prompt.format(today=self.clock.today.isoformat())
            system = self.system_json[workload.workload_id] = _encode(
                {"role": "system", "content": prompt}
            )
        return system

    def _timestamp(self, now_ms: int, index: int) -> str:
        form = self.config.timestamp_format
        if form == "mixed":
            form = ("s", "ms", "iso")[index % 3]
        if form == "s":
            return str(now_ms // 1000)
        if form == "ms":
            return str(now_ms)
        instant = _EPOCH + dt.timedelta(milliseconds=now_ms)
        return f'"{instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")}"'


def labelled_lines(
    records: int, seed: int, config: TrafficConfig | None = None
) -> Iterator[tuple[str, str]]:
    """``(workload_id, line)`` for ``records`` log records, lazily; lines are compact JSON
    without the newline. Arguments are checked at the call, not at the first line drawn."""
    if records < 0:
        raise ValueError("records must be >= 0")
    return _labelled(records, seed, config or TrafficConfig())


def _labelled(records: int, seed: int, config: TrafficConfig) -> Iterator[tuple[str, str]]:
    rng = Random(seed)
    clock = _Clock((config.start - _EPOCH) // dt.timedelta(milliseconds=1))
    source = TurnSource(rng, tuple(WORKLOADS[w] for w in config.workloads), config.client_ids)
    renderer = _Renderer(config, rng, clock)
    for index in range(records):
        # +1: timestamps strictly increase, so no two records share one.
        clock.advance(1 + int(rng.expovariate(1 / _MEAN_GAP_MS)))
        turn = source.next_turn(clock.today)
        yield turn.workload.workload_id, renderer.line(turn, index)


def generate_lines(records: int, seed: int, config: TrafficConfig | None = None) -> Iterator[str]:
    """``records`` log records as compact JSON lines without the newline, lazily."""
    return (line for _, line in labelled_lines(records, seed, config))


def generate_records(
    records: int, seed: int, config: TrafficConfig | None = None
) -> Iterator[dict[str, Any]]:
    """The same records parsed back into dicts: exactly what a reader of the file sees."""
    return map(json.loads, generate_lines(records, seed, config))
