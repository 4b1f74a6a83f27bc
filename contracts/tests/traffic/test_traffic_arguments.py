"""The production model's reference answers are right: the right tool, arguments that obey the
tool's schema and that a model can read off the customer's words."""

import datetime as dt
import json
import re
from collections import Counter
from random import Random
from typing import Any

import pytest

from flywheel_contracts.traffic import TOOLS, WORKLOADS
from flywheel_contracts.traffic.catalog import CATEGORIES
from flywheel_contracts.traffic.conversation import near_duplicate
from flywheel_contracts.traffic.intents import BUILDERS, CUES
from flywheel_contracts.traffic.vocab import SEARCH_QUERIES

pytestmark = pytest.mark.unit

Record = dict[str, Any]
NUMBER = re.compile(r"\d+(?:\.\d+)?")
EMAIL = re.compile(r"^[a-z0-9.]+@[a-z0-9.-]+\.[a-z]+$")
# A word the customer must have used for the tool to be the right one.
TOOL_WORDS = {
    "get_order_status": (
        "status",
        "where is",
        "shipped",
        "any update",
        "check on",
        "news",
        "delivered",
        "on its way",
    ),
    "cancel_order": ("cancel",),
    "track_shipment": ("track", "shipment"),
    "request_refund": ("refund", "back for"),
    "update_shipping_address": ("address", "ship", "send"),
    "check_product_availability": ("stock", "available", "units", "enough", "possible"),
    "search_products": ("looking for", "sell", "find", "show me", "searching"),
    "apply_discount_code": ("code", "added to"),
    "schedule_callback": ("call", "phone"),
    "reset_password": ("password",),
    "update_subscription": ("plan", "tier", "membership"),
    "escalate_to_human": ("human", "person", "supervisor", "escalate"),
}
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


def squash(text: str) -> str:
    """A request without case, punctuation, spacing, greetings or thanks."""
    words = re.sub(r"[\W_]+", " ", text.casefold()).split()
    while words and words[0] in ("hi", "hey", "hello"):
        words.pop(0)
    while words and words[-1] in ("thanks", "help", "please"):
        words.pop()
    return "".join(words)


def tool_calls(record: Record) -> list[tuple[str, dict[str, Any]]]:
    message = record["response"]["choices"][0]["message"]
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls") or ()
    ]


def date_spellings(day: dt.date) -> set[str]:
    month = MONTHS[day.month - 1]
    return {day.isoformat(), f"{month} {day.day}, {day.year}", f"{day.day} {month} {day.year}"}


def has_type(value: Any, json_type: str) -> bool:
    return isinstance(value, TYPES[json_type])


def check_schema(tool: str, arguments: dict[str, Any]) -> None:
    parameters = TOOLS[tool]["function"]["parameters"]
    properties = parameters["properties"]
    assert set(parameters["required"]) <= set(arguments) <= set(properties), (tool, arguments)
    for name, value in arguments.items():
        schema = properties[name]
        assert has_type(value, schema["type"]), (tool, name, value)
        assert schema["type"] == "boolean" or not isinstance(value, bool)
        if "enum" in schema:
            assert value in schema["enum"]
        if "pattern" in schema:
            assert re.fullmatch(schema["pattern"], value)
        if schema.get("format") == "date":
            dt.date.fromisoformat(value)
        if schema.get("format") == "email":
            assert EMAIL.match(value), value
        if "minimum" in schema:
            assert schema["minimum"] <= value <= schema["maximum"]
        if "exclusiveMinimum" in schema:
            assert value > schema["exclusiveMinimum"]


def check_extractable(tool: str, arguments: dict[str, Any], said: str, last: str) -> None:
    """``said``: everything the customer wrote; ``last``: the message being answered."""
    numbers = {float(n) for n in NUMBER.findall(said)}
    properties = TOOLS[tool]["function"]["parameters"]["properties"]
    for name, value in arguments.items():
        cues = CUES.get((tool, name))
        if cues is not None:
            # Enum and boolean values come from the message being answered, by their cue phrases.
            heard = {
                v
                for v, phrases in cues.items()
                if any(p.casefold() in last.casefold() for p in phrases)
            }
            assert heard == {value}, (tool, name, value, last)
        elif properties[name].get("format") == "date":
            assert any(s in last for s in date_spellings(dt.date.fromisoformat(value))), (
                value,
                last,
            )
        elif isinstance(value, str):
            assert value in said, (tool, name, value, said)
        else:
            assert float(value) in numbers, (tool, name, value, said)


def test_arguments_obey_the_schema_and_come_from_the_customer(sample: list[Record]) -> None:
    checked = 0
    for record in sample:
        users = [m["content"] for m in record["request"]["messages"] if m["role"] == "user"]
        for tool, arguments in tool_calls(record):
            check_schema(tool, arguments)
            check_extractable(tool, arguments, "\n".join(users), users[-1])
            checked += 1
    assert checked > len(sample) / 2


def test_the_chosen_tool_matches_what_the_customer_asked(sample: list[Record]) -> None:
    for record in sample:
        last = record["request"]["messages"][-1]["content"].casefold()
        for tool, _ in tool_calls(record):
            assert any(word in last for word in TOOL_WORDS[tool]), (tool, last)


def test_every_tool_is_used_and_order_tools_stays_in_its_subset(sample: list[Record]) -> None:
    used: dict[str, Counter[str]] = {w: Counter() for w in WORKLOADS}
    for record in sample:
        used[record["workload_id"]].update(tool for tool, _ in tool_calls(record))
    assert set(used["customer-service-router"]) == set(TOOLS)
    assert set(used["order-tools"]) == set(WORKLOADS["order-tools"].tools)
    assert not used["customer-service-chat"]
    # No tool is starved: the rarest is at least a fifth of an even share.
    router = used["customer-service-router"]
    assert min(router.values()) > sum(router.values()) / len(TOOLS) / 5


def test_optional_arguments_appear_and_are_left_out(sample: list[Record]) -> None:
    seen: Counter[tuple[str, str]] = Counter()
    calls = Counter[str]()
    for record in sample:
        for tool, arguments in tool_calls(record):
            calls[tool] += 1
            seen.update((tool, name) for name in arguments)
    for tool, definition in TOOLS.items():
        parameters = definition["function"]["parameters"]
        for name in set(parameters["properties"]) - set(parameters["required"]):
            assert 0 < seen[tool, name] < calls[tool], (tool, name)


def test_workload_mix_follows_the_configured_shares(sample: list[Record]) -> None:
    counts = Counter(r["workload_id"] for r in sample)
    for workload_id, workload in WORKLOADS.items():
        assert abs(counts[workload_id] / len(sample) - workload.share) < 0.05, counts


def test_traffic_has_parallel_calls_multi_turn_and_repeats(sample: list[Record]) -> None:
    parallel = [r for r in sample if len(tool_calls(r)) == 2]
    assert parallel and {r["workload_id"] for r in parallel} == {"customer-service-router"}
    assert all(len({t for t, _ in tool_calls(r)}) == 2 for r in parallel)
    with_tool_results = [
        r for r in sample if any(m["role"] == "tool" for m in r["request"]["messages"])
    ]
    assert with_tool_results
    # Tool requests carry ids, so only retries repeat them (FAQ questions recur by themselves).
    prompts = Counter(json.dumps(r["request"]["messages"]) for r in sample if tool_calls(r))
    assert 0.01 < sum(n - 1 for n in prompts.values()) / prompts.total() < 0.04, "exact repeats"
    asked = {r["request"]["messages"][-1]["content"] for r in sample if tool_calls(r)}
    forms = Counter(squash(text) for text in asked)
    near_duplicated = sum(n > 1 for n in forms.values())
    assert near_duplicated > len(asked) / 100, "near duplicates"


def test_cues_are_unambiguous_and_cover_every_enum_and_boolean() -> None:
    for tool, definition in TOOLS.items():
        for name, schema in definition["function"]["parameters"]["properties"].items():
            if "enum" in schema:
                assert set(CUES[tool, name]) == set(schema["enum"]), (tool, name)
            elif schema["type"] == "boolean":
                assert set(CUES[tool, name]) <= {True, False}
    for (tool, name), cues in CUES.items():
        for value, phrases in cues.items():
            others = [p.casefold() for v, ps in cues.items() if v != value for p in ps]
            assert not any(o in p.casefold() for p in phrases for o in others), (tool, name, value)


def test_every_tool_has_a_builder_and_every_category_has_queries() -> None:
    assert set(BUILDERS) == set(TOOLS)
    assert set(SEARCH_QUERIES) == set(CATEGORIES)
    departments = [p.casefold() for ps in CUES["search_products", "category"].values() for p in ps]
    for query in (q for qs in SEARCH_QUERIES.values() for q in qs):
        assert not any(d in query for d in departments), query


def test_near_duplicates_change_form_not_content() -> None:
    rng = Random(0)
    text = "Please cancel order ORD-123456, I changed my mind."
    variants = {near_duplicate(rng, text) for _ in range(200)}
    assert text not in variants and len(variants) > 5
    for variant in variants:
        assert "ORD-123456" in variant and "changed my mind" in variant
        assert squash(variant) == squash(text)
