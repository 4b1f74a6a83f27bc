"""OTLP traces to Flywheel records: an export request's body to one `otlp-span` item per LLM
span (`decode`), and an item to a record (`to_record`).

The call is read from the span's attributes and events, by the first convention that has it,
separately for the request and for the output:

1. OpenTelemetry GenAI: the structured `gen_ai.input.messages` / `gen_ai.output.messages`
   (parts: text, tool_call, tool_call_response, images), `gen_ai.system_instructions`,
   `gen_ai.tool.definitions` (also inside a `gen_ai.client.inference.operation.details` event);
   then the older indexed `gen_ai.prompt.{i}.*` / `gen_ai.completion.{i}.*`; then the message
   events (`gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
   `gen_ai.tool.message`, `gen_ai.choice`). With `gen_ai.request.*`, `gen_ai.response.*` and
   `gen_ai.usage.*`.
2. The call recorded whole: an OpenAI request / response as JSON in `input.value` /
   `output.value` (OpenInference's OpenAI instrumentation writes them), or NeMo Relay's
   `nemo_relay.start.input.content` / `nemo_relay.end.output.*`. They are read ahead of
   OpenInference's flattened copies of the same call, which lose details (Relay's leave a
   history turn's tool calls out).
3. OpenInference: `llm.input_messages.{i}.message.*`, `llm.output_messages.{i}.message.*`,
   `llm.tools.{i}.tool.json_schema`, `llm.model_name`, `llm.invocation_parameters`,
   `llm.token_count.*`.
4. Other `input.value` / `output.value`: a list of messages (OpenAI's, or LangChain's as NeMo
   Agent Toolkit writes them), or text; with NeMo Agent Toolkit's `nat.metadata`
   (`chat_inputs`, `chat_responses`, `tools_schema`). NAT writes an answer's tool calls nowhere
   but at the end of `output.value`, as the Python repr of LangChain's calls after
   "Tool calls: ", which is read as a Python literal (never evaluated). JSON there that none
   of these readers understands (an error, an agent's own input or output) is neither a prompt
   nor an answer.

GenAI message and choice events written with content capture off (none of them holds a
message's content or a tool call's arguments) are no messages, so such a span is refused as an
incomplete call that says so, not read as a call of empty turns.

Tool-call ids and arguments stay as the producer gave them (an object or a string of JSON; a
call that gives no arguments at all gets `{}`).

Identity: `workload_id` is the value of the first of `workload_attributes` set on the span or,
failing that, on its resource (each name is looked up on both before the next); `client_id`
likewise from `client_attributes`, else `default_client_id`. OpenTelemetry SDKs' default
`service.name` (`unknown_service...`) counts as unset. A value is made an identifier
predictably: accents are dropped (NFKD), every run of characters outside letters, digits and
`_.:@/+-` becomes one `-`, `-` at either end is dropped, and it is cut to 256 characters
("Weather Agent (EU)" -> "Weather-Agent-EU", "<workflow>" -> "workflow").

The modules, in the order a record is made: `span` (the item, decoded), `request` (with
`messages` and `tools`), `response` (with `nat` for NeMo Agent Toolkit's serialisations),
`identity` and `provenance`; `values` reads attribute values the same way for all of them.
"""

from typing import Any

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import ProducerSettings
from flywheel_ingest.producers.formats import Untranslatable
from flywheel_ingest.producers.otlp.identity import client_id, to_identifier, workload_id
from flywheel_ingest.producers.otlp.provenance import record_metadata, timestamp
from flywheel_ingest.producers.otlp.request import chat_request
from flywheel_ingest.producers.otlp.response import chat_completion
from flywheel_ingest.producers.otlp.span import read_span

__all__ = ["to_identifier", "to_record"]


def to_record(item: dict[str, Any], settings: ProducerSettings) -> dict[str, Any]:
    try:
        return _to_record(item, settings)
    except RecursionError:
        # Only a hand-made item nests this deep: the decoder refuses bodies nested past 100.
        raise Untranslatable(
            RejectReason.WRONG_TYPE, "the item nests too deeply to be read"
        ) from None


def _to_record(item: dict[str, Any], settings: ProducerSettings) -> dict[str, Any]:
    span = read_span(item)
    request, convention = chat_request(span)
    # Read before the identity, so a span missing its output is refused as an incomplete call
    # whether or not its workload is known.
    response = chat_completion(span, request.get("model"))
    return {
        "workload_id": workload_id(span, settings.otlp),
        "client_id": client_id(span, settings.otlp),
        "timestamp": timestamp(span),
        "request": request,
        "response": response,
        "metadata": record_metadata(span, convention),
    }
