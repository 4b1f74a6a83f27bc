"""NeMo Relay's real OpenTelemetry exporter, fed by a small agent of agent, tool and LLM scopes.

Runs under the producers' venv (`python -m flywheel_localstack.producers` prints it). The
agent runs its model calls through `nemo_relay.llm.execute` / `stream_execute` (with Relay's
`OpenAIChatCodec` as response codec, as Relay's examples do) and its tool through
`nemo_relay.tools.execute`, inside agent scopes; the provider callback answers like an OpenAI
tool-calling model. Relay's native `OpenTelemetrySubscriber` exports the spans over OTLP/HTTP
protobuf, in the `gen_ai` semantic conventions (or `openinference`, or Relay's own `full`), with
the token as a header.

The run: a call answered with a tool call, the tool, the call carrying the tool's answer; a
plain answer inside a nested agent; a streamed answer; a call whose provider fails (an LLM span
with an error status and no output: ingest must reject it as an incomplete call).

What Relay 0.10.4 exports, seen here: `gen_ai`: an LLM span (`chat <model>`, kind CLIENT) with
`gen_ai.operation.name: chat`, `gen_ai.provider.name`, `gen_ai.request.model`/temperature,
`gen_ai.input.messages` and `gen_ai.output.messages` (parts-based JSON; tool-call arguments as
objects), `gen_ai.tool.definitions` with each tool's name and type only (no description, no
parameters), `gen_ai.response.id/model/finish_reasons` (`tool_call`, the conventions' name),
`gen_ai.usage.*`; the agent's name only on its `invoke_agent` span, not on the LLM spans; tool
spans are `execute_tool`. `openinference`: `llm.input_messages`/`llm.output_messages`,
`llm.tools.{i}.tool.json_schema` (complete), `llm.finish_reason` (`tool_use`),
`llm.token_count.*`, `input.value` as text, and the response's own fields under
`nemo_relay.end.output.*`, but history assistant turns without their tool calls. `full`: the
request as sent (`nemo_relay.start.input.content`) and the response (`nemo_relay.end.output.*`),
marked only by `nemo_relay.scope_type: llm`.

    relay_otlp.py --url http://127.0.0.1:8001/v1/traces --token T --client-id C [--type gen_ai]
    relay_otlp.py --fixtures DIR

`--url` prints `{"llm_spans": n, "failed": [...]}`: the LLM spans the agent made (Relay makes
one per call; its exporter reports a failed export in its diagnostics, listed under `failed`).
`--fixtures` exports to a capture server in this script and writes the exact request bodies
(`relay-<type>-*.pb`), one OTLP/JSON file made by Relay's own OTLP file sink
(`relay-gen_ai.jsonl`, the OpenTelemetry file exporter's JSON lines) and `manifest.json` into
DIR.
"""

import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import common

MODEL = "stub-chat-model"
SERVICE = "relay-weather-agent"
TOOLS = [
    common.function_tool(
        "get_weather",
        "Current weather of a city.",
        {"city": {"type": "string", "description": "City name"}},
        ["city"],
    )
]


def completion(request: dict[str, Any], number: int) -> dict[str, Any]:
    """What a tool-calling model answers, decided by the last message of the conversation."""
    messages = request.get("messages") or [{}]
    last = messages[-1]
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish = "stop"
    if last.get("role") == "tool":
        message["content"] = f"According to the weather service: {last.get('content')}"
    elif request.get("tools") and "weather" in str(last.get("content")):
        call = common.tool_call(f"call_{number}", "get_weather", '{"city": "Paris"}')
        message["tool_calls"] = [call]
        finish = "tool_calls"
    else:
        message["content"] = "Hello! I can tell you the weather anywhere."
    return common.chat_completion(
        message,
        finish,
        completion_id=f"chatcmpl-relay-{number}",
        created=1_760_000_000 + number,
        model=request.get("model", MODEL),
        prompt_tokens=20 + 5 * len(messages),
        completion_tokens=11,
    )


async def run_agent() -> int:
    """The agent's work; returns how many LLM calls (LLM spans) it made."""
    import nemo_relay
    from nemo_relay import LLMRequest, ScopeType, ToolExecutionResult
    from nemo_relay.codecs import OpenAIChatCodec

    calls = 0

    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        number = calls

        async def provider(request: LLMRequest) -> dict[str, Any]:
            return completion(dict(request.content), number)

        return await nemo_relay.llm.execute(
            "openai",
            LLMRequest({}, body),
            provider,
            model_name=MODEL,
            response_codec=OpenAIChatCodec(),
        )

    async def weather(args: Any) -> ToolExecutionResult:
        return ToolExecutionResult({"city": args["city"], "forecast": "sunny", "celsius": 21})

    system = {"role": "system", "content": "You are a weather assistant."}
    with nemo_relay.scope.scope("weather-agent", ScopeType.Agent):
        question = {"role": "user", "content": "What is the weather in Paris?"}
        first = await chat(
            {"model": MODEL, "messages": [system, question], "tools": TOOLS, "temperature": 0.2}
        )
        turn = first["choices"][0]["message"]
        call = turn["tool_calls"][0]
        result = await nemo_relay.tools.execute(
            "get_weather",
            json.loads(call["function"]["arguments"]),
            weather,
            tool_call_id=call["id"],
        )
        answer = {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result.result)}
        await chat(
            {
                "model": MODEL,
                "messages": [system, question, turn, answer],
                "tools": TOOLS,
                "temperature": 0.2,
            }
        )

        with nemo_relay.scope.scope("greeter", ScopeType.Agent):
            await chat(
                {
                    "model": MODEL,
                    "messages": [system, {"role": "user", "content": "Hi there!"}],
                    "max_tokens": 64,
                }
            )

        calls += 1
        streamed = completion(
            {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]}, calls
        )
        pieces: list[Any] = []

        async def stream_provider(request: LLMRequest) -> Any:
            text = streamed["choices"][0]["message"]["content"]
            for word in text.split(" "):
                yield {"choices": [{"index": 0, "delta": {"content": word + " "}}]}

        def finalize() -> dict[str, Any]:
            content = "".join(piece["choices"][0]["delta"]["content"] for piece in pieces).rstrip()
            return {
                **streamed,
                "choices": [
                    {**streamed["choices"][0], "message": {"role": "assistant", "content": content}}
                ],
            }

        stream = await nemo_relay.llm.stream_execute(
            "openai",
            LLMRequest(
                {},
                {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "Say hello"}],
                    "stream": True,
                },
            ),
            stream_provider,
            pieces.append,
            finalize,
            model_name=MODEL,
            response_codec=OpenAIChatCodec(),
        )
        async for _ in stream:
            pass

        calls += 1

        async def failing(request: LLMRequest) -> dict[str, Any]:
            raise ConnectionError("the model server went away")

        with contextlib.suppress(ConnectionError):  # the agent carries on; the span records it
            await nemo_relay.llm.execute(
                "openai",
                LLMRequest(
                    {}, {"model": MODEL, "messages": [{"role": "user", "content": "Still there?"}]}
                ),
                failing,
                model_name=MODEL,
                response_codec=OpenAIChatCodec(),
            )
    return calls


@contextmanager
def subscribed(config: Any, name: str) -> Iterator[Any]:
    """Relay's OpenTelemetry subscriber, registered as `name` for the block. Flushing after it
    exports every span the block made; it is deregistered and shut down whatever happens."""
    import nemo_relay
    from nemo_relay import OpenTelemetrySubscriber

    subscriber = OpenTelemetrySubscriber(config)
    subscriber.register(name)
    try:
        yield subscriber
        nemo_relay.subscribers.flush()
        subscriber.force_flush()
    finally:
        nemo_relay.subscribers.deregister(name)
        subscriber.shutdown()


def export(
    otel_type: str, url: str, *, service: str, client_id: str, token: str | None
) -> tuple[int, list[str]]:
    """Run the agent with Relay's OTLP subscriber pointed at `url`; (LLM calls, failures)."""
    from nemo_relay import OpenTelemetryConfig

    config = OpenTelemetryConfig(otel_type, url)
    config.service_name = service
    config.service_namespace = client_id
    if token:
        config.set_header("Authorization", f"Bearer {token}")
    with subscribed(config, "flywheel-otlp") as subscriber:
        calls = asyncio.run(run_agent())
    failures = [
        f"{entry.code}: {entry.message}" for entry in subscriber.runtime_diagnostics().entries
    ]
    return calls, failures


def export_json_lines(out: Path, *, service: str, client_id: str) -> int:
    """The same agent through Relay's OTLP file sink (OTLP/JSON lines, `gen_ai`)."""
    from nemo_relay import OpenTelemetryFileSinkConfig

    with tempfile.TemporaryDirectory() as directory:
        config = OpenTelemetryFileSinkConfig(
            "gen_ai", directory, filename="spans.jsonl", format="json_lines"
        )
        config.service_name = service
        config.service_namespace = client_id
        with subscribed(config, "flywheel-otlp-file"):
            calls = asyncio.run(run_agent())
        (out / "relay-gen_ai.jsonl").write_bytes((Path(directory) / "spans.jsonl").read_bytes())
    return calls


def write_fixtures(out: Path, *, service: str, client_id: str) -> dict[str, Any]:
    common.fresh_directory(out, "relay-*.pb", "relay-*.jsonl")
    manifest: dict[str, Any] = {
        "producer": "nemo-relay 0.10.4 (OpenTelemetrySubscriber)",
        "made_by": "tools/producers/relay_otlp.py --fixtures",
        "service_name": service,
        "client_id": client_id,
        "exports": {},
    }
    for otel_type in ("gen_ai", "openinference", "full"):
        with common.otlp_receiver() as capture:
            calls, failures = export(
                otel_type, capture.url, service=service, client_id=client_id, token=None
            )
        requests = common.write_otlp_bodies(
            out,
            f"relay-{otel_type}",
            capture.bodies,
            lambda spans: {"names": [span.name for span in spans]},
        )
        manifest["exports"][otel_type] = {
            "llm_calls": calls,
            "failures": failures,
            "requests": requests,
        }
    calls = export_json_lines(out, service=service, client_id=client_id)
    manifest["exports"]["gen_ai_json_lines"] = {
        "llm_calls": calls,
        "file": "relay-gen_ai.jsonl",
        "sink": "OpenTelemetryFileSinkConfig(format='json_lines')",
    }
    common.write_manifest(out, manifest)
    return manifest


def main() -> int:
    parser = common.driver_parser(
        __doc__,
        url_help="OTLP/HTTP traces URL (…/v1/traces)",
        fixtures_help="write the exported bodies into this directory",
        token_help="sent as Authorization: Bearer <token>",
        client_id="relay-otlp-driver",
        client_id_help="the resource's service.namespace",
    )
    parser.add_argument("--service", default=SERVICE, help="the resource's service.name")
    parser.add_argument(
        "--type",
        default="gen_ai",
        choices=("gen_ai", "openinference", "full"),
        help="Relay's OTLP flavour",
    )
    args = parser.parse_args()
    if args.fixtures:
        manifest = write_fixtures(args.fixtures, service=args.service, client_id=args.client_id)
        print(
            json.dumps(
                {name: {"llm_calls": e["llm_calls"]} for name, e in manifest["exports"].items()}
            )
        )
        return 0
    calls, failures = export(
        args.type, args.url, service=args.service, client_id=args.client_id, token=args.token
    )
    print(json.dumps({"llm_spans": calls, "failed": failures}))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
