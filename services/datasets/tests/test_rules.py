"""Each validation and quality rule, on a record that breaks only that rule."""

from collections.abc import Callable
from typing import Any

import pytest

from flywheel_datasets.records import Record
from flywheel_datasets.rules import FORMAT_RULES, Checker, Rule, has_function_calls
from services.datasets.tests.factories import TOOLS, record

pytestmark = pytest.mark.unit


def _check(source: Record, *, parse: bool = True) -> Rule | None:
    return Checker(max_tool_properties=8, parse_arguments=parse).check(source)


def _drop(key: str) -> Callable[[Record], None]:
    return lambda r: r.pop(key)


def _set_request(value: Any) -> Callable[[Record], None]:
    return lambda r: r.update(request=value)


def _set_messages(value: Any) -> Callable[[Record], None]:
    return lambda r: r["request"].update(messages=value)


def _set_response(value: Any) -> Callable[[Record], None]:
    return lambda r: r.update(response=value)


def _set_choices(value: Any) -> Callable[[Record], None]:
    return lambda r: r["response"].update(choices=value)


def _wide_tool(r: Record) -> None:
    properties = {f"p{i}": {"type": "string"} for i in range(9)}
    wide = {
        "type": "function",
        "function": {"name": "wide", "parameters": {"properties": properties}},
    }
    r["request"]["tools"] = [*TOOLS, wide]


def _only_system(r: Record) -> None:
    r["request"]["messages"] = [{"role": "system", "content": "hi"}]


@pytest.mark.parametrize(
    ("breaks", "rule"),
    [
        (_drop("request"), Rule.MISSING_REQUEST_OR_RESPONSE),
        (_drop("response"), Rule.MISSING_REQUEST_OR_RESPONSE),
        (_set_request(["not", "an", "object"]), Rule.REQUEST_NOT_OBJECT),
        (_set_messages([]), Rule.NO_MESSAGES),
        (_set_messages("hello"), Rule.NO_MESSAGES),
        (_set_messages([{"content": "no role"}]), Rule.INVALID_MESSAGE),
        (_set_messages(["just text"]), Rule.INVALID_MESSAGE),
        (_wide_tool, Rule.TOO_MANY_TOOL_PROPERTIES),
        (_set_response("text"), Rule.RESPONSE_NOT_OBJECT),
        (_set_choices([]), Rule.NO_CHOICES),
        (_set_choices([{"index": 0}]), Rule.CHOICE_WITHOUT_MESSAGE),
        (_only_system, Rule.NO_USER_MESSAGE),
    ],
)
def test_a_format_rule_names_the_first_thing_broken(
    breaks: Callable[[Record], None], rule: Rule
) -> None:
    source = record()
    breaks(source)
    assert _check(source) is rule
    assert rule in FORMAT_RULES


def test_a_valid_record_passes() -> None:
    assert _check(record()) is None
    assert _check(record(tool=None)) is None


def test_eight_tool_properties_are_still_allowed() -> None:
    properties = {f"p{i}": {"type": "string"} for i in range(8)}
    source = record(
        tools=[
            {
                "type": "function",
                "function": {"name": "t", "parameters": {"properties": properties}},
            }
        ]
    )
    assert _check(source) is None


def test_string_arguments_are_parsed_in_place() -> None:
    source = record(arguments='{"order_id": "ORD-7"}')
    assert _check(source) is None
    call = source["response"]["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] == {"order_id": "ORD-7"}


@pytest.mark.parametrize("arguments", ['{"order_id": ', '["ORD-7"]', "42", 42])
def test_arguments_that_are_not_a_json_object_drop_the_record(arguments: Any) -> None:
    assert _check(record(arguments=arguments)) is Rule.UNPARSABLE_ARGUMENTS


def test_without_argument_parsing_strings_stay_strings() -> None:
    source = record(arguments='{"order_id": ')
    assert _check(source, parse=False) is None
    call = source["response"]["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] == '{"order_id": '


def test_a_shared_tool_list_is_judged_once_and_correctly() -> None:
    checker = Checker(max_tool_properties=1, parse_arguments=True)
    shared = record()
    assert checker.check(shared) is None
    assert checker.check(record(tools=shared["request"]["tools"])) is None
    wide = {
        "type": "function",
        "function": {"name": "w", "parameters": {"properties": {"a": {}, "b": {}}}},
    }
    assert checker.check(record(tools=[wide])) is Rule.TOO_MANY_TOOL_PROPERTIES


def test_the_quality_filter_wants_function_calls() -> None:
    assert has_function_calls(record())
    assert not has_function_calls(record(tool=None))
    retrieval = record()
    retrieval["response"]["choices"][0]["message"]["tool_calls"][0]["type"] = "retrieval"
    assert not has_function_calls(retrieval)
