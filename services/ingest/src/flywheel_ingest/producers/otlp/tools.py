"""Tool definitions and tool calls in OpenAI's shape, from each convention's own.

A call keeps its id and its arguments as the producer gave them (an object or a string of
JSON): validation normalizes a JSON string and refuses a broken one, which it could not do if
the arguments were reshaped here.
"""

from collections.abc import Mapping
from typing import Any

from flywheel_ingest.producers.otlp.span import OtlpSpan
from flywheel_ingest.producers.otlp.values import as_list, indexed, parsed_json


def tool_definitions(
    span: OtlpSpan, structured: Mapping[str, Any], request_value: Any, nat: Mapping[str, Any]
) -> list[Any]:
    """The request's tools, from the first of: GenAI's `gen_ai.tool.definitions`, the recorded
    request's `tools`, OpenInference's `llm.tools.*`, OpenLLMetry's `llm.request.functions.*`,
    NAT's `tools_schema`."""
    return (
        _tool_list(structured.get("gen_ai.tool.definitions"))
        or _tool_list(request_value.get("tools") if isinstance(request_value, dict) else None)
        or _openinference_tools(span.attributes)
        or _tool_list(_indexed_functions(span.attributes))
        or _tool_list(nat.get("tools_schema"))
    )


def tool_calls(value: Any) -> list[dict[str, Any]]:
    """Tool calls in OpenAI's shape, from OpenAI's (`function.name/arguments`) or LangChain's
    (`name`, `args`) or GenAI's flat (`name`, `arguments`)."""
    calls = []
    for call in as_list(value):
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if isinstance(function, dict):
            calls.append(
                {
                    "id": call.get("id"),
                    "type": call.get("type") or "function",
                    "function": {
                        "name": function.get("name"),
                        "arguments": _arguments(function.get("arguments")),
                    },
                }
            )
        elif "name" in call:
            arguments = call["args"] if "args" in call else call.get("arguments")
            calls.append(tool_call(call.get("id"), call.get("name"), arguments))
    return calls


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": _arguments(arguments)},
    }


def _arguments(arguments: Any) -> Any:
    """As given; a call with no arguments at all takes none (`{}`)."""
    return {} if arguments is None else arguments


def _tool_list(value: Any) -> list[Any]:
    """Tool definitions in OpenAI's shape, from OpenAI's own, GenAI's flat `{type, name,
    description, parameters}`, or NAT's `tools_schema` (whose parameters say `type_`)."""
    if not isinstance(value, list):
        return []
    return [_tool(definition) for definition in value if isinstance(definition, dict)]


def _tool(definition: Mapping[str, Any]) -> dict[str, Any]:
    function = definition.get("function")
    if not isinstance(function, dict):
        function = {
            key: definition[key]
            for key in ("name", "description", "parameters", "strict")
            if key in definition
        }
    parameters = function.get("parameters")
    if isinstance(parameters, dict) and "type_" in parameters and "type" not in parameters:
        # NAT 1.9's ToolParameters dumps its `type` field under the Python name.
        function = {
            **function,
            "parameters": {
                ("type" if key == "type_" else key): value for key, value in parameters.items()
            },
        }
    return {"type": definition.get("type") or "function", "function": function}


def _openinference_tools(attrs: Mapping[str, Any]) -> list[Any]:
    schemas = [
        parsed_json(entry.get("tool", {}).get("json_schema"))
        for entry in indexed(attrs, "llm.tools.")
        if isinstance(entry.get("tool"), dict)
    ]
    return _tool_list([schema for schema in schemas if isinstance(schema, dict)])


def _indexed_functions(attrs: Mapping[str, Any]) -> list[Any]:
    """OpenLLMetry's `llm.request.functions.{i}.name/description/parameters`."""
    return [
        {**entry, "parameters": parsed_json(entry["parameters"])}
        if "parameters" in entry
        else entry
        for entry in indexed(attrs, "llm.request.functions.")
    ]
