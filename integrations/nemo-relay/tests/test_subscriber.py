"""The Relay subscriber: batching, retry with backoff, the bounded queue, the intake and file
destinations, settings from the environment, and a real Relay run shipped end to end."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel_relay import (
    FileSink,
    FlywheelSubscriber,
    IntakeSink,
    SubscriberSettings,
    pair,
    to_record,
)
from flywheel_relay.subscriber import Refused, Retryable

pytestmark = pytest.mark.unit

Events = list[dict[str, Any]]
Agent = Callable[[], Coroutine[Any, Any, None]]
URL = "http://flywheel:8001"


class FakeSink:
    """Takes batches; fails as scripted; can hold every send until its gate opens."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.failures: list[Exception] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.closed = False

    def send(self, lines: Sequence[bytes]) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(list(lines))

    def close(self) -> None:
        self.closed = True

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for batch in self.batches for line in batch]


class FakeTime:
    """A clock that only the subscriber's backoff sleeps move."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


def _subscriber(
    sink: FakeSink, time_: FakeTime | None = None, **settings: Any
) -> FlywheelSubscriber:
    values: dict[str, Any] = {"url": URL, "linger_s": 0.0, **settings}
    if time_ is None:
        return FlywheelSubscriber(SubscriberSettings(**values), sink=sink)
    return FlywheelSubscriber(
        SubscriberSettings(**values), sink=sink, sleep=time_.sleep, clock=time_.clock
    )


def _feed(subscriber: FlywheelSubscriber, events: Events, times: int = 1) -> None:
    for _ in range(times):
        for event in events:
            subscriber.on_event(event)


def test_each_call_is_shipped_as_its_record(events: Events) -> None:
    sink = FakeSink()
    subscriber = _subscriber(sink)
    _feed(subscriber, events)
    stats = subscriber.close()
    assert sink.records == [to_record(call) for call in pair(events).calls]
    assert (stats.calls, stats.records, stats.shipped, stats.failed, stats.dropped) == (
        4,
        4,
        4,
        0,
        0,
    )
    assert sink.closed


def test_records_are_sent_in_batches_of_at_most_batch_size(events: Events) -> None:
    sink = FakeSink()
    subscriber = _subscriber(sink, batch_size=3, linger_s=5.0)
    _feed(subscriber, events, times=2)
    assert subscriber.flush(timeout_s=10)
    assert sorted(len(batch) for batch in sink.batches) == [2, 3, 3]
    subscriber.close()


def test_a_batch_waits_up_to_linger_s_for_more_records(events: Events) -> None:
    sink = FakeSink()
    subscriber = _subscriber(sink, batch_size=100, linger_s=0.3)
    started = time.monotonic()
    _feed(subscriber, events)
    while not sink.batches:
        assert time.monotonic() - started < 5
        time.sleep(0.01)
    assert time.monotonic() - started >= 0.25
    assert [len(batch) for batch in sink.batches] == [4]  # one batch, not four
    subscriber.close()


def test_a_delivery_failing_with_retryable_errors_is_retried_with_doubling_backoff(
    events: Events,
) -> None:
    sink, time_ = FakeSink(), FakeTime()
    sink.failures = [Retryable("HTTP 503"), Retryable("ConnectError"), Retryable("HTTP 502")]
    subscriber = _subscriber(sink, time_, batch_size=10, backoff_initial_s=0.5)
    _feed(subscriber, events)
    stats = subscriber.close()
    assert time_.sleeps == [0.5, 1.0, 2.0]
    assert len(sink.records) == 4
    assert (stats.shipped, stats.failed) == (4, 0)


def test_backoff_stops_growing_at_backoff_max_s(events: Events) -> None:
    sink, time_ = FakeSink(), FakeTime()
    sink.failures = [Retryable("HTTP 503")] * 5
    subscriber = _subscriber(sink, time_, batch_size=10, backoff_initial_s=1, backoff_max_s=3)
    _feed(subscriber, events)
    subscriber.close()
    assert time_.sleeps == [1, 2, 3, 3, 3]


def test_a_batch_still_failing_after_give_up_after_s_is_dropped_and_counted_failed(
    events: Events,
) -> None:
    sink, time_ = FakeSink(), FakeTime()
    sink.failures = [Retryable("HTTP 503")] * 100
    subscriber = _subscriber(
        sink, time_, batch_size=10, backoff_initial_s=1, backoff_max_s=60, give_up_after_s=10
    )
    _feed(subscriber, events)
    stats = subscriber.close()
    assert time_.sleeps == [1, 2, 4]  # the next wait, 8 s, would pass 10 s
    assert sink.batches == []
    assert (stats.shipped, stats.failed) == (0, 4)


def test_a_refused_batch_is_not_retried(events: Events) -> None:
    sink, time_ = FakeSink(), FakeTime()
    sink.failures = [Refused("HTTP 401: a valid token is required")]
    subscriber = _subscriber(sink, time_, batch_size=10)
    _feed(subscriber, events)
    stats = subscriber.close()
    assert time_.sleeps == []
    assert (stats.shipped, stats.failed) == (0, 4)


def test_past_max_queue_records_are_dropped_and_the_agent_is_never_held(events: Events) -> None:
    sink = FakeSink()
    sink.gate = threading.Event()  # Flywheel hangs
    subscriber = _subscriber(sink, batch_size=1, max_queue=2)
    _feed(subscriber, events[:3])  # the first call, now in flight
    assert sink.entered.wait(5)
    started = time.monotonic()
    _feed(subscriber, events[3:])
    _feed(subscriber, events, times=4)  # 19 calls more
    assert time.monotonic() - started < 2
    sink.gate.set()
    stats = subscriber.close()
    # One in flight, two queued; the rest dropped.
    assert (stats.calls, stats.records, stats.dropped, stats.shipped) == (20, 3, 17, 3)


def test_calls_that_cannot_become_records_are_skipped_with_their_reason(
    failing_events: Events,
) -> None:
    sink = FakeSink()
    subscriber = _subscriber(sink)
    _feed(subscriber, failing_events)
    stats = subscriber.close()
    assert stats.skipped == {"incomplete_call": 1}
    assert (stats.calls, stats.records, stats.shipped) == (4, 3, 3)


def test_halves_still_open_at_close_are_counted_unpaired(events: Events) -> None:
    sink = FakeSink()
    subscriber = _subscriber(sink)
    llm_start = next(e for e in events if e.get("category") == "llm")
    subscriber.on_event(llm_start)
    stats = subscriber.close()
    assert stats.skipped == {"unpaired_event": 1}
    assert sink.batches == []


def test_the_callback_never_raises_whatever_it_is_given() -> None:
    class Broken:
        def to_dict(self) -> dict[str, Any]:
            raise RuntimeError("not serializable")

    subscriber = _subscriber(FakeSink())
    subscriber.on_event(Broken())
    subscriber.on_event({"kind": "scope", "category": "llm", "scope_category": "end"})
    subscriber.on_event({})
    assert subscriber.close().calls == 0


def test_configured_workload_and_client_apply_to_every_record(events: Events) -> None:
    sink = FakeSink()
    subscriber = _subscriber(sink, workload_id="support", client_id="tenant-9")
    _feed(subscriber, events)
    subscriber.close()
    assert {(r["workload_id"], r["client_id"]) for r in sink.records} == {("support", "tenant-9")}


# -- destinations --------------------------------------------------------------------------------


def _intake(handler: Callable[[httpx.Request], httpx.Response], **settings: Any) -> IntakeSink:
    values: dict[str, Any] = {"url": URL + "/", "token": "s3cret", "source": "shop-agent"}
    return IntakeSink(
        SubscriberSettings(**{**values, **settings}), transport=httpx.MockTransport(handler)
    )


def test_the_intake_gets_an_ndjson_post_to_v1_logs_with_the_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"accepted": 2, "blank": 0})

    _intake(handler).send([b'{"a":1}', b'{"b":2}'])
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/v1/logs")
    assert request.url.params["source"] == "shop-agent"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["content-type"] == "application/x-ndjson"
    assert request.content == b'{"a":1}\n{"b":2}\n'


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(500, Retryable), (503, Retryable), (429, Retryable), (408, Retryable), (401, Refused),
     (413, Refused), (415, Refused)],
)  # fmt: skip
def test_5xx_and_busy_answers_are_retried_other_refusals_are_not(
    status: int, outcome: type[Exception]
) -> None:
    sink = _intake(lambda request: httpx.Response(status, json={"detail": "no"}))
    with pytest.raises(outcome, match=f"HTTP {status}"):
        sink.send([b"{}"])


def test_an_unreachable_intake_is_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(Retryable, match="ConnectError"):
        _intake(handler).send([b"{}"])


def test_without_a_token_no_authorization_is_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    _intake(handler, token=None, source=None).send([b"{}"])
    assert "authorization" not in seen[0].headers
    assert "source" not in seen[0].url.params


def test_file_mode_appends_one_line_per_record_to_a_jsonl_file_for_the_shipper(
    tmp_path: Path, events: Events
) -> None:
    settings = SubscriberSettings(directory=tmp_path, filename="agent.jsonl", linger_s=0)
    for _ in range(2):  # a second process run appends
        subscriber = FlywheelSubscriber(settings)
        _feed(subscriber, events)
        subscriber.close()
    lines = (tmp_path / "agent.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    expected = [to_record(call) for call in pair(events).calls]
    assert [json.loads(line) for line in lines[:-1]] == expected * 2


def test_the_default_file_is_named_per_host_and_process() -> None:
    sink = FileSink(SubscriberSettings(directory=Path("/shipper")))
    assert sink.path.parent == Path("/shipper")
    assert sink.path.name.startswith("nemo-relay-") and sink.path.name.endswith(".jsonl")


def test_a_file_the_shipper_would_not_read_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\*\.jsonl"):
        FileSink(SubscriberSettings(directory=Path("/shipper"), filename="agent.log"))


# -- settings ------------------------------------------------------------------------------------


def test_settings_come_from_flywheel_relay_variables_and_arguments_win() -> None:
    environ = {
        "FLYWHEEL_RELAY_URL": "http://ingest:8001",
        "FLYWHEEL_RELAY_TOKEN": "t0k",
        "FLYWHEEL_RELAY_CLIENT_ID": "acme",
        "FLYWHEEL_RELAY_BATCH_SIZE": "25",
        "FLYWHEEL_RELAY_LINGER_S": "0.2",
        "FLYWHEEL_RELAY_WORKLOAD_ID": "",
        "UNRELATED": "x",
    }
    settings = SubscriberSettings.from_env(environ, client_id="other", batch_size=None)
    assert (settings.url, settings.token, settings.client_id) == (
        "http://ingest:8001",
        "t0k",
        "other",
    )
    assert (settings.batch_size, settings.linger_s, settings.workload_id) == (25, 0.2, None)
    folder = SubscriberSettings.from_env({"FLYWHEEL_RELAY_DIRECTORY": "/var/log/flywheel"})
    assert folder.directory == Path("/var/log/flywheel")


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({}, "exactly one of url"),
        ({"url": URL, "directory": Path("/x")}, "exactly one of url"),
        ({"url": URL, "client_id": "acme corp"}, "client_id must be"),
        ({"url": URL, "batch_size": 0}, "at least 1"),
        ({"url": URL, "backoff_initial_s": 5, "backoff_max_s": 1}, "backoff_max_s"),
    ],
)
def test_settings_that_cannot_work_are_refused_at_once(values: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        SubscriberSettings(**values)


# -- with Relay ----------------------------------------------------------------------------------


def test_registered_with_relay_every_call_of_a_real_run_is_shipped(
    tmp_path: Path, agent: Agent
) -> None:
    settings = SubscriberSettings(directory=tmp_path, filename="relay.jsonl", linger_s=0.01)
    subscriber = FlywheelSubscriber(settings, name="flywheel-test").register()
    asyncio.run(agent())
    stats = subscriber.close()
    records = [json.loads(line) for line in (tmp_path / "relay.jsonl").read_text().splitlines()]
    assert (stats.calls, stats.shipped, stats.skipped) == (4, 4, {})
    assert [(r["workload_id"], r["metadata"]["step"]) for r in records] == [
        ("support-agent", 0),
        ("refund-checker", 0),
        ("support-agent", 1),
        ("support-agent", 0),
    ]
    assert {r["client_id"] for r in records} == {"acme"}


def test_close_deregisters_so_later_calls_are_not_seen(tmp_path: Path, agent: Agent) -> None:
    settings = SubscriberSettings(directory=tmp_path, filename="relay.jsonl", linger_s=0.01)
    subscriber = FlywheelSubscriber(settings, name="flywheel-test").register()
    subscriber.close()
    asyncio.run(agent())
    assert subscriber.stats.calls == 0
    assert not (tmp_path / "relay.jsonl").exists()


async def test_from_a_running_event_loop_aclose_flushes_relay_and_ships(
    tmp_path: Path, agent: Agent
) -> None:
    settings = SubscriberSettings(directory=tmp_path, filename="relay.jsonl", linger_s=0.01)
    subscriber = FlywheelSubscriber(settings, name="flywheel-async").register()
    await agent()
    stats = await subscriber.aclose()
    assert (stats.calls, stats.shipped) == (4, 4)
    assert len((tmp_path / "relay.jsonl").read_text().splitlines()) == 4
