"""The validation and quality rules a logged record must pass to enter a dataset.

The blueprint's OpenAI-format check (request with non-empty messages, no tool over the property
limit, response with non-empty choices each holding a message), plus what its documentation
promises but its code skips: every message is an object with a role, and the record has a user
turn to learn from. Then tool-call arguments given as JSON strings are parsed in place; one that
is not a JSON object drops the record. `Checker.check` names the first rule a record breaks,
so every dropped record is counted under exactly one rule.
"""

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import orjson

from flywheel_datasets.records import Record, user_turns


class Rule(StrEnum):
    """Why a record was dropped; the values are the keys of `FilterStats.rules`."""

    MISSING_REQUEST_OR_RESPONSE = "missing_request_or_response"
    REQUEST_NOT_OBJECT = "request_not_object"
    NO_MESSAGES = "no_messages"
    INVALID_MESSAGE = "invalid_message"
    TOO_MANY_TOOL_PROPERTIES = "too_many_tool_properties"
    RESPONSE_NOT_OBJECT = "response_not_object"
    NO_CHOICES = "no_choices"
    CHOICE_WITHOUT_MESSAGE = "choice_without_message"
    NO_USER_MESSAGE = "no_user_message"
    UNPARSABLE_ARGUMENTS = "unparsable_arguments"
    NO_TOOL_CALLS = "no_tool_calls"
    DUPLICATE = "duplicate"
    NEAR_DUPLICATE = "near_duplicate"


FORMAT_RULES = frozenset(
    {
        Rule.MISSING_REQUEST_OR_RESPONSE,
        Rule.REQUEST_NOT_OBJECT,
        Rule.NO_MESSAGES,
        Rule.INVALID_MESSAGE,
        Rule.TOO_MANY_TOOL_PROPERTIES,
        Rule.RESPONSE_NOT_OBJECT,
        Rule.NO_CHOICES,
        Rule.CHOICE_WITHOUT_MESSAGE,
        Rule.NO_USER_MESSAGE,
    }
)


class Checker:
    """Applies the rules; a tool list shared by many records (the log store's reader hands out
    one object per distinct list) is measured against the property limit once."""

    def __init__(self, *, max_tool_properties: int, parse_arguments: bool) -> None:
        self._max_tool_properties = max_tool_properties
        self._parse_arguments = parse_arguments
        # id -> (the list, verdict): holding the list keeps its id from being reused.
        self._tool_verdicts: dict[int, tuple[object, bool]] = {}

    def check(self, record: Record) -> Rule | None:
        """The first rule `record` breaks, or None; parses string tool arguments in place."""
        broken = _format_rule(record, self._too_many_properties)
        if broken is not None:
            return broken
        if self._parse_arguments and not _parse_arguments(record):
            return Rule.UNPARSABLE_ARGUMENTS
        return None

    def _too_many_properties(self, tools: object) -> bool:
        known = self._tool_verdicts.get(id(tools))
        if known is not None and known[0] is tools:
            return known[1]
        verdict = _too_many_properties(tools, self._max_tool_properties)
        self._tool_verdicts[id(tools)] = (tools, verdict)
        return verdict


def has_function_calls(record: Record) -> bool:
    """The blueprint's quality filter for tool-calling workloads: the first choice that calls
    tools calls only functions (a call without `type` is taken as one, as OpenAI means it)."""
    for choice in record["response"]["choices"]:
        calls = choice["message"].get("tool_calls")
        if calls:
            return isinstance(calls, list) and all(
                isinstance(call, dict) and call.get("type", "function") == "function"
                for call in calls
            )
    return False


def _format_rule(record: Record, too_many_properties: Callable[[object], bool]) -> Rule | None:
    if "request" not in record or "response" not in record:
        return Rule.MISSING_REQUEST_OR_RESPONSE
    request, response = record["request"], record["response"]
    if not isinstance(request, dict):
        return Rule.REQUEST_NOT_OBJECT
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return Rule.NO_MESSAGES
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return Rule.INVALID_MESSAGE
    if too_many_properties(request.get("tools")):
        return Rule.TOO_MANY_TOOL_PROPERTIES
    if not isinstance(response, dict):
        return Rule.RESPONSE_NOT_OBJECT
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return Rule.NO_CHOICES
    if not all(isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices):
        return Rule.CHOICE_WITHOUT_MESSAGE
    if not user_turns(record):
        return Rule.NO_USER_MESSAGE
    return None


def _too_many_properties(tools: object, limit: int) -> bool:
    if not isinstance(tools, list):
        return False
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        parameters = function.get("parameters") if isinstance(function, dict) else None
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if isinstance(properties, dict) and len(properties) > limit:
            return True
    return False


def _parse_arguments(record: Record) -> bool:
    """Turn every response tool call's string arguments into an object; False if one is not."""
    for choice in record["response"]["choices"]:
        for call in choice["message"].get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                return False
            arguments: Any = function.get("arguments")
            if isinstance(arguments, dict):
                continue
            if not isinstance(arguments, str):
                return False
            try:
                parsed = orjson.loads(arguments)
            except orjson.JSONDecodeError:
                return False
            if not isinstance(parsed, dict):
                return False
            function["arguments"] = parsed
    return True
