"""What the producer drivers in this folder share.

The drivers run real producers (NeMo Agent Toolkit, NeMo Relay) against stand-ins for what sits
around them: a stub OpenAI-compatible model, servers that capture what the producer sends, NAT
components registered the way a NAT plugin registers them. Each driver keeps its own
conversations, questions and output files; this module has the machinery. It imports the
producers' packages only inside the functions that need them, so `--help` works anywhere.
"""

import argparse
import asyncio
import contextlib
import json
import threading
import types
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

# -- OpenAI chat completions, as the stub models answer them -----------------------------------


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A tool call of an assistant message; `arguments` is the JSON text the model wrote."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def function_tool(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    """A tool of a chat completions request."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def chat_completion(
    message: dict[str, Any],
    finish: str,
    *,
    completion_id: str,
    created: int,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    **choice: Any,
) -> dict[str, Any]:
    """A whole (not streamed) chat completion of one choice; `choice` adds fields to it."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def stream_chunks(completion: dict[str, Any], *, usage: bool) -> Iterator[dict[str, Any]]:
    """The completion as OpenAI streams it: role, content or tool calls, finish, usage."""
    choice = completion["choices"][0]
    message = choice["message"]
    head = {key: completion[key] for key in ("id", "created", "model")} | {
        "object": "chat.completion.chunk"
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return head | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": "" if message.get("tool_calls") else None})
    if message.get("content"):
        yield chunk({"content": message["content"]})
    for index, call in enumerate(message.get("tool_calls") or ()):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, choice["finish_reason"])
    if usage:
        yield head | {"choices": [], "usage": completion["usage"]}


# -- local HTTP servers: the stub model, the capture servers -----------------------------------


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the driver's stderr for the producer's own logs."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("content-length") or 0))


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free local port for the block; yields the server's base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class StubLLM:
    """A running stub model: its base URL and every request it was asked, in order."""

    url: str = ""
    asked: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def stub_llm(answer: Callable[[dict[str, Any], int], dict[str, Any]]) -> Iterator[StubLLM]:
    """An OpenAI-compatible chat completions server; `answer(request, n)` makes the n-th
    completion, which is streamed when the request asks for it."""
    stub = StubLLM()
    lock = threading.Lock()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            request = json.loads(self.read_body())
            with lock:
                stub.asked.append(request)
                number = len(stub.asked)
            completion = answer(request, number)
            if not request.get("stream"):
                self.send(200, json.dumps(completion).encode(), "application/json")
                return
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            events = [json.dumps(chunk) for chunk in stream_chunks(completion, usage=usage)]
            body = "".join(f"data: {event}\n\n" for event in [*events, "[DONE]"]).encode()
            # The client may hang up once it has the finish chunk.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send(200, body, "text/event-stream")

    with serving(Handler) as url:
        stub.url = url
        yield stub


@dataclass
class OtlpCapture:
    """A running OTLP/HTTP receiver: its traces URL and each (content type, body) it received."""

    url: str = ""
    bodies: list[tuple[str, bytes]] = field(default_factory=list)


@contextmanager
def otlp_receiver() -> Iterator[OtlpCapture]:
    """An OTLP/HTTP traces receiver that accepts every export and keeps its exact body."""
    capture = OtlpCapture()
    lock = threading.Lock()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.read_body()
            with lock:
                capture.bodies.append((self.headers.get("content-type") or "", body))
            self.send(200, b"", "application/x-protobuf")

    with serving(Handler) as url:
        capture.url = f"{url}/v1/traces"
        yield capture


def otlp_spans(body: bytes) -> list[Any]:
    """The spans of an OTLP/HTTP protobuf export body, across its resources and scopes."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    export = ExportTraceServiceRequest.FromString(body)
    return [
        span
        for resource in export.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


def write_otlp_bodies(
    out: Path,
    prefix: str,
    bodies: list[tuple[str, bytes]],
    describe: Callable[[list[Any]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Write each body as `<prefix>-NN.pb`; returns a manifest entry per body, `describe(spans)`
    adding what the driver wants to say about its spans."""
    requests = []
    for number, (content_type, body) in enumerate(bodies, start=1):
        name = f"{prefix}-{number:02d}.pb"
        (out / name).write_bytes(body)
        spans = otlp_spans(body)
        requests.append(
            {"file": name, "content_type": content_type, "spans": len(spans), **describe(spans)}
        )
    return requests


# -- NAT: components registered as a plugin registers them, configuration, runs ----------------


def register_nat_tool(
    type_name: str,
    fn: Callable[[Any], Awaitable[str]],
    input_schema: "type[BaseModel]",
    description: str,
) -> None:
    """Register `fn` as a NAT function (a tool to the agents) of config type `type_name`."""
    from nat.builder.builder import Builder
    from nat.builder.function_info import FunctionInfo
    from nat.cli.register_workflow import register_function
    from nat.data_models.function import FunctionBaseConfig

    # NAT names the config type by the class keyword `name`, as a plugin's class statement does.
    config_type = types.new_class(
        f"{input_schema.__name__}Config", (FunctionBaseConfig,), {"name": type_name}
    )

    @register_function(config_type=config_type)
    async def build(config: Any, builder: Builder):  # type: ignore[no-untyped-def]
        yield FunctionInfo.from_fn(fn, input_schema=input_schema, description=description)


def register_tool_loop(type_name: str, *, system_prompt: str, description: str) -> None:
    """Register a plain tool-calling loop over NAT's LangChain LLM and tools as a NAT function
    of config type `type_name` (fields `llm_name`, `tool_names`). A question containing
    "(stream)" is answered by streamed calls, which LangChain joins back into one message."""
    from nat.builder.builder import Builder
    from nat.builder.framework_enum import LLMFrameworkEnum
    from nat.builder.function_info import FunctionInfo
    from nat.cli.register_workflow import register_function
    from nat.data_models.component_ref import FunctionRef, LLMRef
    from nat.data_models.function import FunctionBaseConfig

    class ToolLoopConfig(FunctionBaseConfig, name=type_name):  # type: ignore[call-arg]
        llm_name: LLMRef
        tool_names: list[FunctionRef]

    @register_function(config_type=ToolLoopConfig, framework_wrappers=[LLMFrameworkEnum.LANGCHAIN])
    async def loop(config: ToolLoopConfig, builder: Builder):  # type: ignore[no-untyped-def]
        from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage

        llm = await builder.get_llm(config.llm_name, wrapper_type=LLMFrameworkEnum.LANGCHAIN)
        tools = await builder.get_tools(
            tool_names=config.tool_names, wrapper_type=LLMFrameworkEnum.LANGCHAIN
        )
        by_name = {tool.name: tool for tool in tools}
        model = llm.bind_tools(tools)

        async def ask(messages: list[BaseMessage], stream: bool) -> Any:
            if not stream:
                return await model.ainvoke(messages)
            reply = None
            async for chunk in model.astream(messages):
                reply = chunk if reply is None else reply + chunk
            return reply

        async def answer(question: str) -> str:
            messages: list[BaseMessage] = [SystemMessage(system_prompt), HumanMessage(question)]
            for _ in range(3):
                reply = await ask(messages, "(stream)" in question)
                messages.append(reply)
                if not reply.tool_calls:
                    return str(reply.content)
                for call in reply.tool_calls:
                    result = await by_name[call["name"]].ainvoke(call["args"])
                    messages.append(ToolMessage(content=str(result), tool_call_id=call["id"]))
            return "no answer after three rounds"

        yield FunctionInfo.from_fn(answer, description=description)


def nat_config(
    llm_url: str,
    model: str,
    *,
    tracing: dict[str, Any],
    functions: dict[str, Any],
    workflow: dict[str, Any],
) -> dict[str, Any]:
    """A NAT configuration, as a user writes it in the YAML `nat run` reads: one `openai` LLM
    named `stub` served at `llm_url`, and `tracing` as its telemetry exporters."""
    return {
        "general": {"telemetry": {"tracing": tracing}},
        "llms": {
            "stub": {
                "_type": "openai",
                "base_url": f"{llm_url}/v1",
                "api_key": "stub",
                "model_name": model,
                "temperature": 0.0,
                "max_retries": 0,
            }
        },
        "functions": functions,
        "workflow": workflow,
    }


def run_nat_workflow(
    config: dict[str, Any],
    path: Path,
    questions: tuple[str, ...],
    *,
    keep_going: bool,
    **session: str,
) -> list[str]:
    """Write `config` to `path` and run the workflow on each question, one session each
    (`session` names it: user_id, conversation_id); returns the answers. With `keep_going`, a
    failed run's answer is its error and the next question runs."""
    import yaml

    path.write_text(yaml.safe_dump(config))
    return asyncio.run(_run_questions(path, questions, keep_going=keep_going, session=session))


async def _run_questions(
    path: Path, questions: tuple[str, ...], *, keep_going: bool, session: dict[str, str]
) -> list[str]:
    from nat.runtime.loader import load_workflow

    outcomes: list[str] = []
    async with load_workflow(path) as sessions:
        for question in questions:
            try:
                async with (
                    sessions.session(**session) as running,
                    running.run(question) as runner,
                ):
                    outcomes.append(str(await runner.result(to_type=str)))
            except Exception as exc:  # a failed run still exported its LLM calls
                if not keep_going:
                    raise
                outcomes.append(f"error: {type(exc).__name__}: {exc}")
    # Leaving load_workflow shuts the exporters down; one flushes its last batch in a task it
    # does not wait for. A NAT server lives on and lets it finish, so this run does too.
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    if pending:
        await asyncio.wait(pending, timeout=30)
    return outcomes


# -- command line and fixture files ------------------------------------------------------------


def driver_parser(
    doc: str | None,
    *,
    client_id: str,
    client_id_help: str,
    url_help: str | None = None,
    fixtures_help: str | None = None,
    fixtures_metavar: str | None = None,
    token_help: str | None = None,
) -> argparse.ArgumentParser:
    """The options every driver has: `--url` (a live endpoint) or `--fixtures` (a directory the
    producer's output is written to), `--token` and `--client-id`."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--url", help=url_help)
    mode.add_argument("--fixtures", type=Path, metavar=fixtures_metavar, help=fixtures_help)
    parser.add_argument("--token", help=token_help)
    parser.add_argument("--client-id", default=client_id, help=client_id_help)
    return parser


def fresh_directory(out: Path, *patterns: str) -> Path:
    """Create `out` if needed and remove what an earlier run wrote there (files matching
    `patterns`), so that nothing stale stays among the fixtures."""
    out.mkdir(parents=True, exist_ok=True)
    for pattern in patterns:
        for old in out.glob(pattern):
            old.unlink()
    return out


def write_manifest(out: Path, manifest: dict[str, Any], *, indent: int = 2) -> None:
    (out / "manifest.json").write_text(json.dumps(manifest, indent=indent) + "\n")
