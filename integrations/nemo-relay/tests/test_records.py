"""Relay events to Flywheel records: pairing (any order, unpaired halves, repeats), agent runs
and steps, nested scopes, the record's shape and the reasons a call has no record."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from flywheel_relay import (
    PRODUCER,
    Call,
    CallContext,
    Pairing,
    Problem,
    RecordError,
    pair,
    to_record,
    workload_for_agent,
)
from flywheel_relay.records import instant_ns

pytestmark = pytest.mark.unit

Events = list[dict[str, Any]]


def _llm(events: Events, phase: str) -> Events:
    return [e for e in events if e.get("category") == "llm" and e["scope_category"] == phase]


def _agent_starts(events: Events) -> dict[str, str]:
    """uuid -> name of every agent scope started."""
    return {
        e["uuid"]: e["name"]
        for e in events
        if e.get("category") == "agent" and e["scope_category"] == "start"
    }


def _summary(calls: list[Call]) -> list[tuple[str, str | None, str | None, int | None]]:
    return [(c.uuid, c.context.agent, c.context.agent_run, c.context.step) for c in calls]


# -- pairing ---------------------------------------------------------------------------------


def test_each_llm_start_and_end_pair_becomes_one_call_in_start_order(events: Events) -> None:
    paired = pair(events)
    starts = _llm(events, "start")
    assert [call.uuid for call in paired.calls] == [start["uuid"] for start in starts]
    assert all(call.start is not None and call.end is not None for call in paired.calls)
    assert [call.start for call in paired.calls] == starts
    assert [call.end["uuid"] for call in paired.calls if call.end] == [s["uuid"] for s in starts]
    assert paired.unpaired == []


def test_events_other_than_llm_starts_and_ends_are_ignored_and_counted(events: Events) -> None:
    paired = pair(events)
    others = [e for e in events if e.get("category") != "llm"]
    # Three agent runs (one nested) and a tool, each a start and an end; one mark.
    assert paired.ignored == len(others) == 9
    assert any(e["kind"] == "mark" for e in others)


@pytest.mark.parametrize("seed", range(5))
def test_events_in_any_order_pair_into_the_same_calls_runs_and_steps(
    events: Events, seed: int
) -> None:
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    assert shuffled != events
    assert _summary(pair(shuffled).calls) == _summary(pair(events).calls)


def test_a_start_without_its_end_and_an_end_without_its_start_are_reported_unpaired(
    events: Events,
) -> None:
    first, second = _llm(events, "start")[:2]
    second_end = next(e for e in _llm(events, "end") if e["uuid"] == second["uuid"])
    cut = [e for e in events if e is not second and e is not _end_of(events, first)]
    paired = pair(cut)
    assert len(paired.calls) == 2  # of 4
    halves = {(call.uuid, call.start is not None, call.end is not None) for call in paired.unpaired}
    assert halves == {(first["uuid"], True, False), (second["uuid"], False, True)}
    unpaired_end = next(call for call in paired.unpaired if call.end is not None)
    assert unpaired_end.end == second_end


def test_a_half_waits_for_the_other_which_may_come_first() -> None:
    pairing = Pairing()
    start = {"kind": "scope", "category": "llm", "scope_category": "start", "uuid": "u1"}
    end = {**start, "scope_category": "end"}
    assert pairing.add(end) is None
    assert pairing.open_calls == 1
    call = pairing.add(start)
    assert call is not None and (call.start, call.end) == (start, end)
    assert pairing.open_calls == 0
    assert pairing.finish() == []


def test_past_max_open_the_oldest_half_is_set_aside_as_unpaired() -> None:
    pairing = Pairing(max_open=2)
    for number in range(3):
        event = {
            "kind": "scope",
            "category": "llm",
            "scope_category": "start",
            "uuid": f"u{number}",
        }
        assert pairing.add(event) is None
    assert pairing.open_calls == 2
    assert [call.uuid for call in pairing.finish()] == ["u0", "u1", "u2"]
    assert pairing.open_calls == 0


def test_a_call_exported_twice_keeps_its_step_and_gives_the_same_record(events: Events) -> None:
    once = pair(events)
    twice = pair(events + events)
    assert len(twice.calls) == 2 * len(once.calls)
    assert twice.unpaired == []
    records = {json.dumps(to_record(call), sort_keys=True) for call in twice.calls}
    assert records == {json.dumps(to_record(call), sort_keys=True) for call in once.calls}


# -- agent runs, steps, scopes -----------------------------------------------------------------


def test_each_call_belongs_to_its_nearest_agent_run_with_steps_from_zero(events: Events) -> None:
    agents = _agent_starts(events)
    calls = pair(events).calls
    runs: dict[str, list[int | None]] = {}
    for call in calls:
        assert call.context.agent_run in agents
        assert call.context.agent == agents[str(call.context.agent_run)]
        runs.setdefault(str(call.context.agent_run), []).append(call.context.step)
    assert sorted(len(steps) for steps in runs.values()) == [1, 1, 2]  # checker, run 2, run 1
    assert all(steps == list(range(len(steps))) for steps in runs.values())


def test_a_nested_agents_call_is_in_the_nested_run_under_the_outer_scope_path(
    events: Events,
) -> None:
    calls = pair(events).calls
    nested = [call for call in calls if call.context.agent == "refund-checker"]
    assert len(nested) == 1
    assert nested[0].context.step == 0
    assert nested[0].context.scope_path == ("support agent", "refund-checker")
    outer = [call for call in calls if call.context.agent == "support agent"]
    assert {call.context.scope_path for call in outer} == {("support agent",)}
    assert nested[0].context.agent_run not in {call.context.agent_run for call in outer}
    # The client named on the outer agent holds for the nested agent's call too.
    assert {call.context.client_id for call in calls} == {"acme"}


def test_a_subscriber_seeing_events_live_numbers_steps_as_pairing_a_list_does(
    events: Events,
) -> None:
    pairing = Pairing()
    live = [call for event in events if (call := pairing.add(event)) is not None]
    assert sorted(_summary(live)) == sorted(_summary(pair(events).calls))


# -- the record ----------------------------------------------------------------------------------


def test_a_call_becomes_a_record_with_the_raw_request_and_response(events: Events) -> None:
    call = pair(events).calls[0]
    assert call.start is not None and call.end is not None
    record = to_record(call)
    assert record["request"] == call.start["data"]["content"]
    assert record["response"] == call.end["data"]
    assert record["timestamp"] == call.start["timestamp"]
    assert (record["workload_id"], record["client_id"]) == ("support-agent", "acme")
    # Tool-call ids and argument strings stay as the provider gave them.
    tool_call = record["response"]["choices"][0]["message"]["tool_calls"][0]
    assert tool_call["id"] == "call_abc123"
    assert tool_call["function"]["arguments"] == '{"order": 7}'
    assert "headers" not in record["request"]


def test_the_records_metadata_names_the_producer_agent_run_step_and_ids(events: Events) -> None:
    call = pair(events).calls[0]
    assert call.start is not None and call.end is not None
    metadata = to_record(call)["metadata"]
    latency = metadata.pop("latency_ms")
    assert metadata == {
        "producer": PRODUCER,
        "agent": "support agent",
        "agent_run": call.start["parent_uuid"],
        "step": 0,
        "call_id": call.uuid,
        "call_name": "nim",
        "parent_uuid": call.start["parent_uuid"],
        "root_uuid": call.start["propagation_root_uuid"],
        "scope_path": ["support agent"],
        "model_name": "meta/llama-3.1-8b-instruct",
    }
    started, ended = instant_ns(call.start["timestamp"]), instant_ns(call.end["timestamp"])
    assert started is not None and ended is not None
    assert latency > 0
    assert latency == pytest.approx((ended - started) / 1e6, abs=0.001)


def test_configured_workload_and_client_win_over_the_events(events: Events) -> None:
    record = to_record(pair(events).calls[0], workload_id="support", client_id="tenant-9")
    assert (record["workload_id"], record["client_id"]) == ("support", "tenant-9")
    assert record["metadata"]["agent"] == "support agent"


def test_the_client_named_on_the_call_itself_wins_over_its_scopes(events: Events) -> None:
    call = pair(events).calls[0]
    assert call.start is not None
    start = {**call.start, "metadata": {"flywheel.client_id": "from-call"}}
    record = to_record(Call(call.uuid, start, call.end, call.context))
    assert record["client_id"] == "from-call"


def test_an_agent_name_becomes_a_workload_id_with_runs_of_odd_characters_as_dashes() -> None:
    assert workload_for_agent("support agent") == "support-agent"
    assert workload_for_agent("  Trip   Planner (v2) ") == "Trip-Planner-v2"
    assert workload_for_agent("a/b:c@d+e.f_g-h") == "a/b:c@d+e.f_g-h"
    assert workload_for_agent("***") is None
    assert workload_for_agent("x" * 300) == "x" * 256


def test_without_its_agent_scope_event_the_agent_comes_from_relays_session_header(
    events: Events,
) -> None:
    call = pair(events).calls[0]
    bare = Call(call.uuid, call.start, call.end)  # as if the scope events were not exported
    record = to_record(bare, client_id="acme")
    assert record["workload_id"] == "support-agent"
    assert record["metadata"]["agent"] == "support agent"
    assert "agent_run" not in record["metadata"] and "step" not in record["metadata"]


def test_a_call_outside_any_agent_without_a_configured_workload_has_no_record() -> None:
    start = {
        "kind": "scope",
        "category": "llm",
        "scope_category": "start",
        "uuid": "u1",
        "name": "nim",
        "timestamp": "2026-01-01T00:00:00.000000001+00:00",
        "data": {"headers": {}, "content": {"messages": [{"role": "user", "content": "hi"}]}},
    }
    end = {**start, "scope_category": "end", "data": {"choices": []}}
    with pytest.raises(RecordError) as raised:
        to_record(Call("u1", start, end), client_id="acme")
    assert raised.value.problem is Problem.NO_IDENTITY
    assert "outside any agent scope" in raised.value.message
    assert to_record(Call("u1", start, end), workload_id="w", client_id="c")["workload_id"] == "w"
    with pytest.raises(RecordError, match="no client"):
        to_record(Call("u1", start, end), workload_id="w")


def test_a_failed_call_has_no_record_and_says_what_the_provider_raised(
    failing_events: Events,
) -> None:
    paired = pair(failing_events)
    failed = paired.calls[-1]
    assert failed.end is not None and failed.end["data"] is None
    with pytest.raises(RecordError) as raised:
        to_record(failed)
    assert raised.value.problem is Problem.INCOMPLETE_CALL
    assert "the call failed" in raised.value.message
    assert "upstream 503" in raised.value.message


def test_unpaired_halves_have_no_record_and_the_message_says_which_half_and_what_to_do(
    events: Events,
) -> None:
    call = pair(events).calls[0]
    with pytest.raises(RecordError) as only_start:
        to_record(Call(call.uuid, call.start, None, call.context))
    with pytest.raises(RecordError) as only_end:
        to_record(Call(call.uuid, None, call.end, call.context))
    assert only_start.value.problem is only_end.value.problem is Problem.UNPAIRED_EVENT
    assert "only its start event arrived" in only_start.value.message
    assert "only its end event arrived" in only_end.value.message
    for message in (only_start.value.message, only_end.value.message):
        assert "http_post stream sink" in message and "ndjson" in message


@pytest.mark.parametrize(
    ("start_data", "problem", "words"),
    [
        (None, Problem.INCOMPLETE_CALL, "carries no request"),
        ({"headers": {}, "content": {"model": "m"}}, Problem.INCOMPLETE_CALL, "no messages"),
        ({"content": {"model": "m", "input": "hi"}}, Problem.NOT_OPENAI_FORMAT, "Responses"),
    ],
)
def test_a_start_without_chat_messages_has_no_record(
    events: Events, start_data: Any, problem: Problem, words: str
) -> None:
    call = pair(events).calls[0]
    assert call.start is not None
    start = {**call.start, "data": start_data}
    with pytest.raises(RecordError) as raised:
        to_record(Call(call.uuid, start, call.end, call.context))
    assert raised.value.problem is problem
    assert words in raised.value.message


def test_an_end_whose_response_is_not_an_object_is_not_openai_format(events: Events) -> None:
    call = pair(events).calls[0]
    assert call.end is not None
    end = {**call.end, "data": "plain text"}
    with pytest.raises(RecordError) as raised:
        to_record(Call(call.uuid, call.start, end, call.context))
    assert raised.value.problem is Problem.NOT_OPENAI_FORMAT


# -- items ---------------------------------------------------------------------------------------


def test_a_call_survives_its_item_form(events: Events) -> None:
    for call in pair(events).calls:
        item = json.loads(json.dumps(call.item()))
        assert Call.from_item(item) == Call(call.uuid, call.start, call.end, call.context)


def test_an_item_of_one_half_keeps_that_half_only(events: Events) -> None:
    call = pair(events).calls[0]
    item = Call(call.uuid, call.start, None, call.context).item()
    assert set(item) == {"start", "context"}
    assert Call.from_item(item).end is None


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({}, "neither a start nor an end"),
        ({"start": {"kind": "mark", "uuid": "u"}}, "LLM scope event"),
        ({"start": "text"}, "LLM scope event"),
        ({"end": {"kind": "scope", "category": "llm", "scope_category": "end"}}, "LLM scope"),
        ({"start": {"kind": "scope", "category": "llm", "scope_category": "start", "uuid": "a"},
          "end": {"kind": "scope", "category": "llm", "scope_category": "end", "uuid": "b"}},
         "different calls"),
        ({"end": {"kind": "scope", "category": "llm", "scope_category": "end", "uuid": "b"},
          "context": {"step": "one"}}, "step must be an integer"),
        ({"end": {"kind": "scope", "category": "llm", "scope_category": "end", "uuid": "b"},
          "context": []}, "context must be an object"),
    ],
)  # fmt: skip
def test_a_malformed_item_is_refused_as_wrong_type(item: dict[str, Any], words: str) -> None:
    with pytest.raises(RecordError) as raised:
        Call.from_item(item)
    assert raised.value.problem is Problem.WRONG_TYPE
    assert words in raised.value.message


def test_a_context_round_trips_and_leaves_out_what_is_unknown() -> None:
    context = CallContext("a", "run-1", 3, ("outer", "a"), "acme")
    assert CallContext.from_json(context.to_json()) == context
    assert CallContext().to_json() == {"scope_path": []}


def test_relay_nanosecond_times_keep_their_nanoseconds() -> None:
    assert instant_ns("1970-01-01T00:00:01.000000001+00:00") == 1_000_000_001
    assert instant_ns("1970-01-01T01:00:00.5+01:00") == 500_000_000
    assert instant_ns("1970-01-01T00:00:02Z") == 2_000_000_000
    assert instant_ns("yesterday") is None
    assert instant_ns(12) is None


def _end_of(events: Events, start: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in _llm(events, "end") if e["uuid"] == start["uuid"])
