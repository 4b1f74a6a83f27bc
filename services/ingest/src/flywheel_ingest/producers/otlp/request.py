"""The chat-completions request a span records.

A record's request is OpenAI's whatever the producer, so the model and the parameters are
taken under OpenAI's names from whichever attributes carry them, and any others are left out.
"""

from typing import Any

from flywheel_ingest.producers.otlp.messages import gen_ai_structured, request_messages
from flywheel_ingest.producers.otlp.nat import nat_metadata
from flywheel_ingest.producers.otlp.span import OtlpSpan
from flywheel_ingest.producers.otlp.tools import tool_definitions
from flywheel_ingest.producers.otlp.values import first_text, parsed_json

REQUEST_PARAMETERS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "user",
    }
)
"""OpenAI chat parameters kept from `llm.invocation_parameters` or an OpenAI request (one with
`messages`) recorded whole."""

GEN_AI_PARAMETERS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.choice.count": "n",
}


def chat_request(span: OtlpSpan) -> tuple[dict[str, Any], str]:
    """The request, and which convention gave its messages."""
    structured = gen_ai_structured(span)
    nat = nat_metadata(span)
    request_value = _verbatim_request(span)
    messages, convention = request_messages(span, structured, request_value, nat)
    # Tools and parameters come only from a recorded OpenAI request: any other object in
    # `input.value` is an application's or an agent's own input, whose `tools`, `user` or `n`
    # mean something else.
    openai_request = request_value if _is_chat_request(request_value) else None
    tools = tool_definitions(span, structured, openai_request, nat)
    parameters = _parameters(span, openai_request)
    model = first_text(
        span.attribute("gen_ai.request.model"),
        span.attribute("llm.model_name"),
        parameters.pop("model", None),
        span.attribute("gen_ai.response.model"),
    )
    request: dict[str, Any] = {"model": model} if model else {}
    request["messages"] = messages
    if tools:
        request["tools"] = tools
    request.update(parameters)
    return request, convention


def _verbatim_request(span: OtlpSpan) -> Any:
    """The request as the application sent it, when a span records it whole: `input.value`
    (OpenInference's OpenAI instrumentation writes the request's JSON there; NAT writes its
    message list) or NeMo Relay's `nemo_relay.start.input.content` (its `full` flavour)."""
    relay = parsed_json(span.attribute("nemo_relay.start.input.content"))
    if isinstance(relay, dict) and isinstance(relay.get("messages"), list):
        return relay
    return parsed_json(span.attribute("input.value"))


def _parameters(span: OtlpSpan, request_value: Any) -> dict[str, Any]:
    """The request's parameters (and `model`, if a source names it) under OpenAI's names:
    GenAI's `gen_ai.request.*` first, then `llm.invocation_parameters`, then the recorded
    request's own."""
    parameters = {
        name: span.attributes[key]
        for key, name in GEN_AI_PARAMETERS.items()
        if key in span.attributes
    }
    invocation = parsed_json(span.attribute("llm.invocation_parameters"))
    for source in (invocation, request_value):
        if isinstance(source, dict):
            for name, value in source.items():
                if name in REQUEST_PARAMETERS or name == "model":
                    parameters.setdefault(name, value)
    return parameters


def _is_chat_request(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("messages"), list)
