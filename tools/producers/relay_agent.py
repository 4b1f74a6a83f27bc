"""A small agent run under NeMo Relay, exported by Relay's own JSONL file sink and by the
flywheel-relay subscriber. Runs in the producers' venv (`flywheel_localstack.producers`), which
has nemo-relay but not flywheel-relay: this script puts `integrations/nemo-relay/src` on
`sys.path` instead of installing it there.

The agent ("trip-planner") answers three questions, one agent run each, through Relay's managed
LLM and tool calls; its LLM is a stub returning OpenAI chat completions (tool calls included).
One question goes to a nested agent ("weather researcher", a name with a space) run as a tool;
one answer is streamed. The last run shows what real traffic carries: a completion that says
`finish_reason: tool_calls` without any, a provider error, an empty assistant turn.

    --fixtures DIR   write Relay's JSONL export (events.jsonl), the events a subscriber saw
                     (subscriber-events.jsonl), the subscriber's records in file mode
                     (subscriber-records.jsonl) and manifest.json with counts
    --url URL --token T
                     ship through the subscriber to URL's /v1/logs, then POST Relay's JSONL
                     export to URL's /v1/relay/events; print counts as JSON
    --relay-stream   (with --url) point Relay's own ndjson stream sink at URL's
                     /v1/relay/events instead of posting the JSONL export

The agent scopes carry `flywheel.client_id` = --client-id (what the events routes use); the
subscriber is configured with --subscriber-client-id, so each route's records are told apart.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "integrations" / "nemo-relay" / "src"))

import common  # noqa: E402
import httpx  # noqa: E402
import nemo_relay  # noqa: E402
from nemo_relay import LLMRequest, ScopeType  # noqa: E402
from nemo_relay.observability import (  # noqa: E402
    AtofConfig,
    AtofFileSinkConfig,
    AtofStreamSinkConfig,
    ComponentSpec,
    ObservabilityConfig,
)
from nemo_relay.plugin import PluginConfig, initialize  # noqa: E402

from flywheel_relay import (  # noqa: E402
    CLIENT_ID_KEY,
    FlywheelSubscriber,
    SubscriberSettings,
    SubscriberStats,
)

AGENT = "trip-planner"
RESEARCHER = "weather researcher"
MODEL = "meta/llama-3.1-8b-instruct"
EXPORT_NAME = "events.jsonl"
QUESTIONS = (
    "What's the weather in Paris, and how much is 120 EUR in USD?",
    "I land in Tokyo tomorrow morning: what should I pack?",
    "Book me a table for two in Lisbon tonight.",
)

TOOLS: list[dict[str, Any]] = [
    common.function_tool(
        "get_weather", "Current weather of a city.", {"city": {"type": "string"}}, ["city"]
    ),
    common.function_tool(
        "convert_currency",
        "Convert an amount between currencies.",
        {"amount": {"type": "number"}, "source": {"type": "string"}, "target": {"type": "string"}},
        ["amount", "source", "target"],
    ),
    common.function_tool(
        "research_weather",
        "Ask the weather researcher for a forecast and advice.",
        {"city": {"type": "string"}, "when": {"type": "string"}},
        ["city"],
    ),
]
WEATHER = {"Paris": (14, "light rain"), "Tokyo": (22, "sunny"), "Lisbon": (19, "clear")}


# -- the stub LLM: OpenAI chat completions ---------------------------------------------------


def _completion(
    message: dict[str, Any], finish: str, prompt: list[dict[str, Any]]
) -> dict[str, Any]:
    return common.chat_completion(
        message,
        finish,
        completion_id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
        created=1767225600,
        model=MODEL,
        prompt_tokens=sum(len(str(m.get("content") or "").split()) + 4 for m in prompt),
        completion_tokens=len(str(message.get("content") or "").split())
        + 8 * len(message.get("tool_calls") or []),
    )


def _tool_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return common.tool_call(f"call_{uuid.uuid4().hex[:12]}", name, json.dumps(arguments))


def stub_answer(content: dict[str, Any]) -> dict[str, Any]:
    """What a tool-calling model would answer to this conversation."""
    messages: list[dict[str, Any]] = content["messages"]
    question = next(m["content"] for m in messages if m["role"] == "user")
    results = [m for m in messages if m["role"] == "tool"]
    if "forecast" in question:  # the weather researcher's own question
        if not results:
            call = _tool_call("get_weather", {"city": "Tokyo"})
            return _completion(
                {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", messages
            )
        return _completion(
            {
                "role": "assistant",
                "content": f"Expect {results[0]['content']}; a light jacket is enough.",
            },
            "stop",
            messages,
        )
    if "Paris" in question:
        if not results:
            calls = [
                _tool_call("get_weather", {"city": "Paris"}),
                _tool_call("convert_currency", {"amount": 120, "source": "EUR", "target": "USD"}),
            ]
            return _completion(
                {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls", messages
            )
        text = f"Paris: {results[0]['content']}. 120 EUR is {results[1]['content']}."
        return _completion({"role": "assistant", "content": text}, "stop", messages)
    if "Tokyo" in question:
        if not results:
            call = _tool_call("research_weather", {"city": "Tokyo", "when": "tomorrow"})
            return _completion(
                {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", messages
            )
        return _completion(
            {"role": "assistant", "content": f"Pack light: {results[0]['content']}"},
            "stop",
            messages,
        )
    # Lisbon: what real providers sometimes answer.
    attempts = sum(1 for m in messages if m["role"] == "assistant")
    if attempts == 0:
        return _completion({"role": "assistant", "content": ""}, "tool_calls", messages)
    if attempts == 1 and not any("retry" in str(m.get("content")) for m in messages):
        raise RuntimeError("upstream 503: model overloaded")
    return _completion({"role": "assistant", "content": ""}, "stop", messages)


async def llm_impl(request: LLMRequest) -> dict[str, Any]:
    await asyncio.sleep(0.002)
    return stub_answer(dict(request.content))


# -- the agent --------------------------------------------------------------------------------


async def run_tool(name: str, arguments: dict[str, Any], client_id: str) -> str:
    if name == "get_weather":
        degrees, sky = WEATHER[arguments["city"]]
        return f"{degrees}°C, {sky}"
    if name == "convert_currency":
        return f"{arguments['amount'] * 1.08:.2f} {arguments['target']}"
    if name == "research_weather":
        question = f"Give the forecast for {arguments['city']} {arguments.get('when', 'today')}, with advice."
        return await run_agent(RESEARCHER, question, [TOOLS[0]], client_id)
    raise ValueError(f"unknown tool {name}")


async def call_llm(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], *, stream: bool
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "model": MODEL,
        "messages": list(messages),
        "tools": tools,
        "temperature": 0.2,
    }
    if not stream:
        return await nemo_relay.llm.execute(  # type: ignore[no-any-return]
            "nim", LLMRequest({}, content), llm_impl, model_name=MODEL
        )
    content["stream"] = True
    answer: dict[str, Any] = {}

    async def impl(request: LLMRequest) -> AsyncIterator[dict[str, Any]]:
        answer.update(stub_answer(dict(request.content)))
        for word in (answer["choices"][0]["message"]["content"] or "").split(" "):
            await asyncio.sleep(0.001)
            delta = {"index": 0, "delta": {"content": word + " "}}
            yield {"id": answer["id"], "object": "chat.completion.chunk", "choices": [delta]}

    chunks: list[Any] = []
    # The finalizer answers the whole completion, as a client assembles it from the chunks.
    stream = await nemo_relay.llm.stream_execute(
        "nim", LLMRequest({}, content), impl, chunks.append, lambda: answer, model_name=MODEL
    )
    async for _ in stream:
        pass
    return answer


async def run_agent(name: str, question: str, tools: list[dict[str, Any]], client_id: str) -> str:
    with nemo_relay.scope.scope(name, ScopeType.Agent, metadata={CLIENT_ID_KEY: client_id}):
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"You are {name}. Use the tools; answer briefly."},
            {"role": "user", "content": question},
        ]
        for turn in range(6):
            try:
                # The trip planner's final answer to the packing question is streamed.
                stream = name == AGENT and "Tokyo" in question and turn > 0
                response = await call_llm(messages, tools, stream=stream)
            except Exception as exc:
                messages.append({"role": "user", "content": f"(retry after: {exc})"})
                continue
            choice = response["choices"][0]
            message = choice["message"]
            messages.append(message)
            calls = message.get("tool_calls") or []
            for call in calls:
                arguments = json.loads(call["function"]["arguments"])

                async def tool(args: Any, name: str = call["function"]["name"]) -> Any:
                    return nemo_relay.ToolExecutionResult(await run_tool(name, args, client_id))

                result = await nemo_relay.tools.execute(
                    call["function"]["name"], arguments, tool, tool_call_id=call["id"]
                )
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": str(result.result)}
                )
            if not calls and choice["finish_reason"] != "tool_calls":
                return str(message.get("content") or "")
        return ""


async def run(
    export_dir: Path,
    subscriber: FlywheelSubscriber,
    client_id: str,
    stream_url: str | None,
    token: str | None,
) -> list[dict[str, Any]]:
    """Run the agent with Relay's file export (and stream sink) and the subscriber attached;
    returns the events a plain subscriber saw."""
    sinks: list[AtofFileSinkConfig | AtofStreamSinkConfig] = [
        AtofFileSinkConfig(output_directory=str(export_dir), filename=EXPORT_NAME, mode="overwrite")
    ]
    if stream_url is not None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        sinks.append(
            AtofStreamSinkConfig(
                url=stream_url, transport="ndjson", headers=headers, timeout_millis=10_000
            )
        )
    activation = await initialize(
        PluginConfig(
            version=1,
            components=[
                ComponentSpec(ObservabilityConfig(atof=AtofConfig(enabled=True, sinks=sinks)))
            ],
        )
    )
    seen: list[dict[str, Any]] = []
    nemo_relay.subscribers.register("capture", lambda event: seen.append(dict(event.to_dict())))
    subscriber.register()
    try:
        for question in QUESTIONS:
            await run_agent(AGENT, question, TOOLS, client_id)
    finally:
        await subscriber.aclose()
        nemo_relay.subscribers.deregister("capture")
        await activation.close()
    return seen


def _counts(events: list[dict[str, Any]]) -> dict[str, Any]:
    llm = [e for e in events if e.get("category") == "llm" and e.get("kind") == "scope"]
    return {
        "events": len(events),
        "llm_calls": sum(1 for e in llm if e["scope_category"] == "start"),
        "llm_ends": sum(1 for e in llm if e["scope_category"] == "end"),
        "agent_runs": sum(
            1 for e in events if e.get("category") == "agent" and e.get("scope_category") == "start"
        ),
        "tool_calls": sum(
            1 for e in events if e.get("category") == "tool" and e.get("scope_category") == "start"
        ),
        "by_kind": dict(Counter(f"{e.get('kind')}:{e.get('category')}" for e in events)),
    }


def _stats(stats: SubscriberStats) -> dict[str, Any]:
    return {
        "calls": stats.calls,
        "records": stats.records,
        "shipped": stats.shipped,
        "dropped": stats.dropped,
        "failed": stats.failed,
        "skipped": dict(stats.skipped),
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fixtures(directory: Path, client_id: str) -> dict[str, Any]:
    common.fresh_directory(directory, "subscriber-records.jsonl")
    records = directory / "subscriber-records.jsonl"
    subscriber = FlywheelSubscriber(
        SubscriberSettings(directory=directory, filename=records.name, linger_s=0.05)
    )
    seen = asyncio.run(run(directory, subscriber, client_id, None, None))
    (directory / "subscriber-events.jsonl").write_text(
        "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in seen)
    )
    (directory / EXPORT_NAME).chmod(0o644)  # Relay creates it private; it is a fixture to commit
    exported = _read_jsonl(directory / EXPORT_NAME)
    manifest = {
        "generated_by": "tools/producers/relay_agent.py --fixtures",
        "nemo_relay": _version("nemo-relay"),
        "agent": AGENT,
        "client_id": client_id,
        "export": _counts(exported),
        "subscriber_saw": _counts(seen),
        "subscriber": _stats(subscriber.stats),
        "subscriber_records": len(_read_jsonl(records)),
    }
    common.write_manifest(directory, manifest)
    return manifest


def live(
    url: str,
    token: str | None,
    client_id: str,
    subscriber_client_id: str,
    export_dir: Path,
    relay_stream: bool,
) -> dict[str, Any]:
    subscriber = FlywheelSubscriber(
        SubscriberSettings(
            url=url,
            token=token,
            client_id=subscriber_client_id,
            source=subscriber_client_id,
            linger_s=0.05,
        )
    )
    stream_url = (
        f"{url.rstrip('/')}/v1/relay/events?source={client_id}-stream" if relay_stream else None
    )
    asyncio.run(run(export_dir, subscriber, client_id, stream_url, token))
    export = export_dir / EXPORT_NAME
    result: dict[str, Any] = {
        "export": str(export),
        "relay": _counts(_read_jsonl(export)),
        "subscriber": _stats(subscriber.stats),
        "client_ids": {"events": client_id, "subscriber": subscriber_client_id},
    }
    if relay_stream:
        return (
            result  # Relay's stream sink delivered the events; posting the file would repeat them
        )
    headers = {"content-type": "application/x-ndjson"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    posted = httpx.post(
        f"{url.rstrip('/')}/v1/relay/events",
        params={"source": client_id},
        content=export.read_bytes(),
        headers=headers,
        timeout=60,
    )
    result["events_route"] = {"status": posted.status_code, "answer": posted.json()}
    return result


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main() -> None:
    parser = common.driver_parser(
        __doc__,
        fixtures_metavar="DIR",
        client_id="relay-demo",
        client_id_help="flywheel.client_id of the agent scopes",
    )
    parser.add_argument(
        "--subscriber-client-id",
        help="the subscriber's configured client (default: <client-id>.subscriber)",
    )
    parser.add_argument(
        "--export-dir", type=Path, help="where Relay's JSONL export goes (--url mode)"
    )
    parser.add_argument("--relay-stream", action="store_true")
    args = parser.parse_args()
    if args.fixtures is not None:
        result = fixtures(args.fixtures, args.client_id)
    else:
        export_dir = args.export_dir or Path(tempfile.mkdtemp(prefix="relay-export-"))
        result = live(
            args.url,
            args.token,
            args.client_id,
            args.subscriber_client_id or f"{args.client_id}.subscriber",
            export_dir,
            args.relay_stream,
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
