"""NeMo Agent Toolkit's real OpenTelemetry exporter, fed by real NAT workflows.

Runs under the producers' venv (`python -m flywheel_localstack.producers` prints it). Two NAT
workflows run against a stub OpenAI-compatible LLM served by this script, with NAT's `openai`
LLM through its LangChain wrapper and a NAT tool, traced by NAT's `otelcollector` telemetry
exporter (`nvidia-nat-opentelemetry`: its span exporter -> `OTLPSpanAdapterExporter` ->
OpenTelemetry's OTLP/HTTP protobuf exporter), configured the way a NAT user configures it:

- a tool-calling loop registered as a NAT function: a call answered with a tool call and the
  call after it that carries the tool's answer, a plain answer, a call whose tool arguments are
  not JSON, and a streamed tool call with its follow-up;
- NAT's own `tool_calling_agent` (LangGraph, streaming): a tool question and a greeting.

Besides the LLM spans NAT exports its workflow, function, LangGraph-node and tool spans: they
must produce nothing in Flywheel.

What NAT 1.9.0 does with them, seen here: an LLM span carries the prompt as LangChain messages
in `input.value` (JSON; history AI turns keep their `tool_calls`, tool turns their
`tool_call_id`), the tools in `nat.metadata.tools_schema` (parameters' `type` dumped as
`type_`), the answer in `nat.metadata.chat_responses` (a LangChain generation whose message is
dumped without its tool calls) and in `output.value` as text, tool calls appended as the Python
repr of LangChain's calls after "Tool calls: "; token counts as `llm.token_count.*`; no agent
name. A call whose tool arguments are not JSON keeps neither the calls nor the arguments
(LangChain files them under `invalid_tool_calls`, which NAT does not write). NAT's
`tool_calling_agent` exports only each run's first LLM call: the steps after its first
LangGraph node name an ended step as parent, and NAT's span exporter drops them ("No parent
span found for step").

    nat_otel.py --url http://127.0.0.1:8001/v1/traces --token T --client-id C [--gzip]
    nat_otel.py --fixtures DIR

`--url` prints `{"llm_spans": n, "spans": m, "requests": k, "failed_llm_spans": f}`: what
NAT's OTLP exporter handed over (observed by wrapping the OpenTelemetry exporter's `export`)
and the LLM spans of exports that did not succeed. `--fixtures` exports to a capture server in
this script and writes the exact request bodies (`nat-otel-*.pb`) and `manifest.json` into DIR.
"""

import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import common

MODEL = "stub-chat-model"
SERVICE = "nat-weather-assistant"
SYSTEM_PROMPT = "You are a weather assistant. Use the tools when they help."
LOOP_QUESTIONS = (
    "What is the weather in Paris?",
    "Hello! Who are you?",
    "What is the weather in Rome? (broken)",
    "What is the weather in Oslo? (stream)",
)
AGENT_QUESTIONS = ("What is the weather in Berlin?", "Good morning!")


# -- the stub LLM: what it answers (common.stub_llm serves it) ---------------------------------


def completion(request: dict[str, Any], number: int) -> dict[str, Any]:
    """What a tool-calling model answers, decided by the last message of the conversation."""
    messages = request.get("messages") or [{}]
    last = messages[-1]
    text = str(last.get("content") or "")
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish = "stop"
    if last.get("role") == "tool":
        message["content"] = f"According to the weather service: {text}"
    elif request.get("tools") and "weather in" in text:
        city = text.split("weather in ", 1)[1].split("?", 1)[0]
        # A model cut off mid-arguments writes arguments that are not JSON.
        arguments = (
            '{"city": "Rome", "unit": "cel' if "broken" in text else json.dumps({"city": city})
        )
        message["tool_calls"] = [common.tool_call(f"call_{number}", "get_weather", arguments)]
        finish = "tool_calls"
    else:
        message["content"] = "I am a weather assistant. Ask me about any city."
    return common.chat_completion(
        message,
        finish,
        completion_id=f"chatcmpl-{number}",
        created=1_760_000_000 + number,
        model=request.get("model", MODEL),
        prompt_tokens=10 + sum(len(str(m.get("content") or "")) // 4 for m in messages),
        completion_tokens=9,
    )


# -- what NAT's exporter hands to OpenTelemetry's ----------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    spans: int = 0
    llm_spans: int = 0
    failed_llm_spans: int = 0


def observe_exports(tally: Tally) -> None:
    """Count the spans of each export and whether it succeeded; the export itself is untouched."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    export = OTLPSpanExporter.export

    def observed(exporter: OTLPSpanExporter, spans: Any) -> SpanExportResult:
        result = export(exporter, spans)
        llm = sum(
            1 for span in spans if (span.attributes or {}).get("openinference.span.kind") == "LLM"
        )
        tally.requests += 1
        tally.spans += len(spans)
        if result is SpanExportResult.SUCCESS:
            tally.llm_spans += llm
        else:
            tally.failed_llm_spans += llm
        return result

    OTLPSpanExporter.export = observed  # type: ignore[method-assign]


# -- NAT: the tool, the workflows, the configuration -------------------------------------------


def register_components() -> None:
    """A tool and a tool-calling loop, registered the way a NAT plugin registers them."""
    from pydantic import BaseModel, Field

    class WeatherInput(BaseModel):
        city: str = Field(description="City name")

    async def get_weather(query: WeatherInput) -> str:
        return f"Sunny and 21 C in {query.city}."

    common.register_nat_tool(
        "otel_weather", get_weather, WeatherInput, "Current weather of a city."
    )
    common.register_tool_loop(
        "otel_tool_loop",
        system_prompt=SYSTEM_PROMPT,
        description="Answers weather questions with the tools.",
    )


def nat_config(
    llm_url: str, traces_url: str, *, service: str, client_id: str, workflow: dict[str, Any]
) -> dict[str, Any]:
    """A NAT configuration, as a user writes it in the YAML `nat run` reads."""
    exporter = {
        "_type": "otelcollector",
        "endpoint": traces_url,
        "project": service,  # becomes the resource's service.name
        "resource_attributes": {"service.namespace": client_id},
        "batch_size": 16,
        "flush_interval": 0.5,
    }
    return common.nat_config(
        llm_url,
        MODEL,
        tracing={"otel": exporter},
        functions={"get_weather": {"_type": "otel_weather"}},
        workflow=workflow,
    )


WORKFLOWS = (
    (
        {"_type": "otel_tool_loop", "llm_name": "stub", "tool_names": ["get_weather"]},
        LOOP_QUESTIONS,
    ),
    (
        {"_type": "tool_calling_agent", "llm_name": "stub", "tool_names": ["get_weather"]},
        AGENT_QUESTIONS,
    ),
)


def run_workflows(llm_url: str, traces_url: str, *, service: str, client_id: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        for number, (workflow, questions) in enumerate(WORKFLOWS):
            config = nat_config(
                llm_url, traces_url, service=service, client_id=client_id, workflow=workflow
            )
            common.run_nat_workflow(
                config,
                Path(directory) / f"workflow-{number}.yml",
                questions,
                keep_going=False,
                conversation_id=f"conversation-{number}",
            )


def set_exporter_environment(token: str | None, gzip: bool) -> None:
    """NAT's `otelcollector` exporter takes no headers; OpenTelemetry's exporter reads them (and
    its compression) from the standard environment, which is how a user passes a token."""
    if token:
        os.environ["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = (
            f"Authorization={quote(f'Bearer {token}')}"
        )
    if gzip:
        os.environ["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"] = "gzip"


def write_fixtures(
    out: Path, bodies: list[tuple[str, bytes]], tally: Tally, client_id: str, llm_calls: int
) -> None:
    def llm_spans(spans: list[Any]) -> dict[str, Any]:
        kinds = [
            next(
                (
                    a.value.string_value
                    for a in span.attributes
                    if a.key == "openinference.span.kind"
                ),
                "",
            )
            for span in spans
        ]
        return {"llm_spans": kinds.count("LLM")}

    common.fresh_directory(out, "nat-otel-*.pb")
    requests = common.write_otlp_bodies(out, "nat-otel", bodies, llm_spans)
    manifest = {
        "producer": "nvidia-nat-opentelemetry 1.9.0 (otelcollector exporter), nvidia-nat-langchain 1.9.0",
        "made_by": "tools/producers/nat_otel.py --fixtures",
        "service_name": SERVICE,
        "client_id": client_id,
        "llm_calls": llm_calls,
        "spans": sum(r["spans"] for r in requests),
        "llm_spans": sum(r["llm_spans"] for r in requests),
        "exporter": asdict(tally),
        "requests": requests,
    }
    common.write_manifest(out, manifest)


def main() -> int:
    parser = common.driver_parser(
        __doc__,
        url_help="OTLP/HTTP traces URL (…/v1/traces)",
        fixtures_help="write the exported bodies into this directory",
        token_help="sent as Authorization: Bearer <token>",
        client_id="nat-otel-driver",
        client_id_help="the resource's service.namespace",
    )
    parser.add_argument(
        "--service", default=SERVICE, help="NAT's project: the resource's service.name"
    )
    parser.add_argument("--gzip", action="store_true", help="gzip the export bodies")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    set_exporter_environment(args.token, args.gzip)
    register_components()
    tally = Tally()
    observe_exports(tally)
    with common.stub_llm(completion) as llm:
        if args.url:
            run_workflows(llm.url, args.url, service=args.service, client_id=args.client_id)
            print(json.dumps(asdict(tally)))
            return 0 if tally.failed_llm_spans == 0 else 1
        with common.otlp_receiver() as capture:
            run_workflows(llm.url, capture.url, service=args.service, client_id=args.client_id)
        write_fixtures(args.fixtures, capture.bodies, tally, args.client_id, len(llm.asked))
        print(json.dumps(asdict(tally)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
