"""Acceptance 1, tool-call metrics: hand-made cases of argument encodings, key order, numeric
types, missing/extra/parallel calls and empty responses."""

from typing import Any

import pytest

from flywheel_evaluator.toolcalls import calls_match, names_match, parse_tool_calls

pytestmark = pytest.mark.unit


def call(name: str, arguments: Any) -> dict[str, Any]:
    return {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}


def both(reference: Any, predicted: Any) -> tuple[bool, bool]:
    ref, pred = parse_tool_calls(reference), parse_tool_calls(predicted)
    return names_match(ref, pred), calls_match(ref, pred)


REFERENCE = [call("get_weather", {"city": "Paris", "days": 3})]


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        pytest.param(REFERENCE, (True, True), id="identical"),
        pytest.param(
            [call("get_weather", '{"city": "Paris", "days": 3}')], (True, True), id="json-string"
        ),
        pytest.param(
            [call("get_weather", '{ "days":3,\n  "city":"Paris" }')],
            (True, True),
            id="key-order-and-whitespace",
        ),
        pytest.param(
            [call("get_weather", {"city": "Paris", "days": 3.0})], (True, True), id="3==3.0"
        ),
        pytest.param(
            [call("get_weather", {"city": "Paris", "days": "3"})], (True, False), id="'3'!=3"
        ),
        pytest.param(
            [call("get_weather", {"city": "paris", "days": 3})], (True, False), id="case-matters"
        ),
        pytest.param([call("get_weather", {"city": "Paris"})], (True, False), id="missing-arg"),
        pytest.param(
            [call("get_weather", {"city": "Paris", "days": 3, "unit": "C"})],
            (True, False),
            id="extra-arg",
        ),
        pytest.param(
            [call("get_forecast", {"city": "Paris", "days": 3})], (False, False), id="name"
        ),
        pytest.param([], (False, False), id="no-call"),
        pytest.param(None, (False, False), id="null-tool-calls"),
        pytest.param(
            [*REFERENCE, call("get_time", {"city": "Paris"})], (False, False), id="extra-call"
        ),
        pytest.param([*REFERENCE, *REFERENCE], (False, False), id="repeated-call"),
        pytest.param([call("get_weather", "{not json")], (True, False), id="unparsable-args"),
        pytest.param([{"type": "function"}], (False, False), id="call-without-function"),
    ],
)
def test_single_call(predicted: Any, expected: tuple[bool, bool]) -> None:
    assert both(REFERENCE, predicted) == expected


def test_parallel_calls_compare_as_multisets() -> None:
    reference = [call("a", {"x": 1}), call("b", {"y": [1, 2]}), call("a", {"x": 2})]
    shuffled = [call("a", '{"x": 2}'), call("a", {"x": 1.0}), call("b", {"y": [1, 2]})]
    assert both(reference, shuffled) == (True, True)
    # Same names but the argument values swapped between the two `a` calls still match as a
    # multiset; a value moved to the wrong call does not.
    wrong = [call("a", {"x": 1}), call("a", {"x": 1}), call("b", {"y": [1, 2]})]
    assert both(reference, wrong) == (True, False)
    missing = [call("a", {"x": 1}), call("b", {"y": [1, 2]})]
    assert both(reference, missing) == (False, False)


def test_nested_values_and_types() -> None:
    reference = [call("f", {"filter": {"b": [1, {"z": True}], "a": None}, "n": 10})]
    assert both(
        reference, [call("f", '{"n": 1e1, "filter": {"a": null, "b": [1, {"z": true}]}}')]
    ) == (True, True)
    # Array order is meaning, True is not 1, null is not missing.
    assert (
        both(reference, [call("f", {"filter": {"b": [{"z": True}, 1], "a": None}, "n": 10})])[1]
        is False
    )
    assert (
        both(reference, [call("f", {"filter": {"b": [1, {"z": 1}], "a": None}, "n": 10})])[1]
        is False
    )
    assert both(reference, [call("f", {"filter": {"b": [1, {"z": True}]}, "n": 10})])[1] is False


def test_empty_arguments_are_an_empty_object() -> None:
    reference = [call("ping", {})]
    empties: tuple[Any, ...] = ("", None, "{}", {})
    for empty in empties:
        assert both(reference, [call("ping", empty)]) == (True, True)


def test_no_reference_call_and_no_prediction_agree() -> None:
    assert both([], []) == (True, True)
    assert both([], [call("a", {})]) == (False, False)


def test_identical_unparsable_arguments_never_match() -> None:
    bad = [call("f", "{oops")]
    assert both(bad, bad) == (True, False)
