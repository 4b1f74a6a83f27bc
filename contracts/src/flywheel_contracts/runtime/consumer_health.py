"""Whether the Kafka consumer still consumes: the `consumer` readiness check and liveness.

librdkafka emits its statistics (`statistics.interval.ms`) onto the queue the application serves
with `poll()`/`consume()`, and runs `stats_cb` from inside that call, on the polling thread. So
the time the last consumer statistics arrived is, within one interval, the time the application
last polled: a consumer stuck in a handler, or whose loop died, stops delivering them. The
statistics also carry the group state (`cgrp.state`, `cgrp.join_state`, `cgrp.assignment_size`)
and each partition's `consumer_lag`.

`ConsumerHealth` keeps the last of them and answers, on its clock:

- unready when the consumer has not polled for `ready_after_s`, or has not been in its group
  (`up`, join state `steady`) with partitions assigned for longer than `settle_grace_s`;
- not alive when it has not polled for `live_after_s`.

Before the first statistics the clocks run from `started()`, so a consumer that is still
starting is given the same intervals. Nothing here touches Kafka: it is tested on plain values.
"""

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

StatisticsCallback = Callable[[str], None]
ClientHooks = dict[str, int | StatisticsCallback]
"""librdkafka properties that make a client report its statistics to a `ConsumerHealth`."""

GROUP_UP = "up"
JOIN_STEADY = "steady"

# Producers share the broker's configuration (and so the callback); their statistics are told
# apart by the `type` near the start of the document, without parsing the rest.
_TYPE = re.compile(r'"type":\s*"(\w+)"')
_HEAD_CHARS = 1024

_log = structlog.get_logger("flywheel.consumer_health")


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    """What one librdkafka statistics document of a consumer says about its group and lag."""

    name: str
    state: str | None
    """`cgrp.state`; None for a consumer without a group."""
    join_state: str | None
    assignment_size: int
    rebalance_cnt: int
    rebalance_reason: str
    lag: int | None
    """Messages between the committed offsets and the ends of the partitions this consumer
    holds (`consumer_lag` summed); None while no partition reports one."""

    @property
    def in_group(self) -> bool:
        return self.state == GROUP_UP and self.join_state == JOIN_STEADY

    def describe(self) -> str:
        lag = "unknown" if self.lag is None else str(self.lag)
        return (
            f"group state {self.state or 'none'}, join state {self.join_state or 'none'}, "
            f"{self.assignment_size} partitions assigned, {self.rebalance_cnt} rebalances, "
            f"lag {lag}"
        )


def parse_statistics(raw: str) -> ConsumerStats | None:
    """The consumer's view in librdkafka's statistics JSON; None for another client's (a
    producer's) or for a document that is not statistics."""
    kind = _TYPE.search(raw, 0, _HEAD_CHARS)
    if kind is None or kind.group(1) != "consumer":
        return None
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("type") != "consumer":
        return None
    group = data.get("cgrp")
    group = group if isinstance(group, dict) else {}
    return ConsumerStats(
        name=str(data.get("name", "")),
        state=_text(group.get("state")),
        join_state=_text(group.get("join_state")),
        assignment_size=_count(group.get("assignment_size")),
        rebalance_cnt=_count(group.get("rebalance_cnt")),
        rebalance_reason=str(group.get("rebalance_reason") or ""),
        lag=_lag(data.get("topics")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _lag(topics: object) -> int | None:
    """Partitions this consumer does not hold (and the internal partition -1) report -1."""
    if not isinstance(topics, Mapping):
        return None
    lags = [
        partition["consumer_lag"]
        for topic in topics.values()
        if isinstance(topic, Mapping) and isinstance(topic.get("partitions"), Mapping)
        for partition in topic["partitions"].values()
        if isinstance(partition, Mapping)
        and isinstance(partition.get("consumer_lag"), int)
        and partition["consumer_lag"] >= 0
        and partition.get("partition", -1) >= 0
    ]
    return sum(lags) if lags else None


@dataclass(frozen=True, slots=True)
class ConsumerLimits:
    """When a consumer counts as stalled (resolved from `HEALTH__*`)."""

    ready_after_s: float
    live_after_s: float
    settle_grace_s: float
    require_assignment: bool = True


class ConsumerHealth:
    """The last statistics of this service's consumer and when they came; thread-safe (the
    statistics arrive on the polling thread, the checks run on the event loop)."""

    def __init__(
        self,
        limits: ConsumerLimits,
        *,
        statistics_interval_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._statistics_interval_ms = statistics_interval_ms
        self._clock = clock
        self._lock = threading.Lock()
        self._started_at: float | None = None
        self._since: float = 0.0
        """When the consumer last polled or, until it first reports, started."""
        self._stats: ConsumerStats | None = None
        self._unsettled_since: float | None = None

    def client_hooks(self) -> ClientHooks:
        """Properties for the consumer's librdkafka configuration."""
        return {
            "statistics.interval.ms": self._statistics_interval_ms,
            "stats_cb": self.on_statistics,
        }

    def started(self) -> None:
        """The consumer is being started: the intervals run from now until it first reports."""
        with self._lock:
            now = self._clock()
            self._started_at = self._since = now
            self._stats = None
            self._unsettled_since = now

    def on_statistics(self, raw: str) -> None:
        """librdkafka's `stats_cb`. Never raises: an exception here would surface from the
        consumer's `poll()` and could end the consuming loop."""
        try:
            stats = parse_statistics(raw)
        except Exception as exc:
            _log.warning("consumer.statistics_unreadable", error=f"{type(exc).__name__}: {exc}")
            return
        if stats is not None:
            self.observe(stats)

    def observe(self, stats: ConsumerStats) -> None:
        """The consumer reported `stats` from inside a poll, now."""
        settled = stats.in_group and (
            stats.assignment_size > 0 or not self.limits.require_assignment
        )
        with self._lock:
            now = self._clock()
            if self._started_at is None:
                self._started_at = now
            self._since = now
            self._stats = stats
            if settled:
                self._unsettled_since = None
            elif self._unsettled_since is None:
                self._unsettled_since = now

    def readiness_problem(self) -> str | None:
        """Why the service should not count as ready, or None."""
        with self._lock:
            if self._started_at is None:
                return None
            now = self._clock()
            idle = now - self._since
            if idle > self.limits.ready_after_s:
                return self._not_polled(idle, self.limits.ready_after_s, "readiness")
            if self._unsettled_since is not None:
                unsettled = now - self._unsettled_since
                if unsettled > self.limits.settle_grace_s:
                    wanted = "with partitions assigned " if self.limits.require_assignment else ""
                    return (
                        f"the consumer has not been in its group {wanted}for {unsettled:.0f}s "
                        f"(allowed {self.limits.settle_grace_s:g}s): {self._last()}"
                    )
            return None

    def liveness_problem(self) -> str | None:
        """Why the service should count as dead (and be restarted), or None."""
        with self._lock:
            if self._started_at is None:
                return None
            idle = self._clock() - self._since
            if idle > self.limits.live_after_s:
                return self._not_polled(idle, self.limits.live_after_s, "liveness")
            return None

    async def check(self) -> None:
        """The `consumer` readiness check."""
        problem = self.readiness_problem()
        if problem is not None:
            raise ConsumerStalled(problem)

    def _not_polled(self, idle: float, limit: float, probe: str) -> str:
        if self._stats is None:
            return (
                f"the consumer has not polled since it started {idle:.0f}s ago "
                f"({probe} allows {limit:g}s)"
            )
        return (
            f"the consumer has not polled for {idle:.0f}s ({probe} allows {limit:g}s); "
            f"last seen: {self._last()}"
        )

    def _last(self) -> str:
        return "no statistics yet" if self._stats is None else self._stats.describe()


class ConsumerStalled(RuntimeError):
    """The consumer does not poll, or is not in its group."""


class StallGate:
    """The stall test hook (`TESTING__STALL_HOOK`, `POST /testing/stall|resume`): while closed,
    the consumer's dispatch path waits in front of it, as a hung handler would, so the consumer
    stops polling. Open unless a test closes it."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()

    @property
    def stalled(self) -> bool:
        return not self._open.is_set()

    def stall(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    async def passage(self) -> None:
        await self._open.wait()
