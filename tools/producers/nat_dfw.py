"""NeMo Agent Toolkit's real Data Flywheel exporter, fed by a real NAT workflow.

Runs under the producers' venv (`python -m flywheel_localstack.producers` prints it). A NAT
workflow (a tool-calling loop registered as a NAT function, NAT's `openai` LLM through its
LangChain wrapper, three NAT tools) runs against a stub OpenAI-compatible server in this script.
NAT's LangChain callback handler records each LLM call as intermediate steps, its span exporter
turns them into spans, and `data_flywheel_elasticsearch` (DFWElasticsearchExporter: span -> its
converters -> its Elasticsearch mixin -> `AsyncElasticsearch.bulk`) exports them to the target,
configured the way a NAT user configures it (`nat_config`, the YAML of `nat run`).

The questions exercise what real traffic has: a tool-calling call and the call after it that
carries the tool's answer, a plain chat answer, calls of the `<workflow>` top level and of a
named tool that calls the LLM itself, a tool with more than 8 parameters, tool arguments that
are not JSON, and a streamed call.

What NAT 1.9.0 (with the langchain-openai its `[openai]` extra pins) makes of them, seen here:
every tool call is lost (its converter reads `additional_kwargs["tool_calls"]`, which
langchain-openai 1.x no longer fills), so a tool-calling answer is exported as
`finish_reason: tool_calls` with no calls and empty content; so are the assistant turns of the
history, and a streamed turn (an `AIMessageChunk`) comes out as an empty *user* message; the
9-parameter tool is left out of `request.tools`; `usage` is NAT's own shape; every record says
`contract_version: "1.0"` whatever the exporter's setting.

    nat_dfw.py --url http://127.0.0.1:8001 --token T --client-id C   # export to a live endpoint
    nat_dfw.py --fixtures DIR                  # export to a capture server; write what NAT sent

`--url` prints `{"exported": n, "requests": m, "items": [...]}` on stdout: the documents NAT
handed to the Elasticsearch client (observed by wrapping the client's `bulk`/`index`; NAT never
looks at the answer) and each item's answer. `--fixtures` writes `bulk-*.ndjson` / `doc-*.json`
(the exact bodies), `llm-*.json` (what the LLM was asked) and `manifest.json` into DIR.
"""

import gzip
import json
import logging
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import common

QUESTIONS = (
    "What is the weather in Paris?",
    "Hello! Who are you?",
    "Please summarize the plot of Hamlet for me.",
    "Register Ada Lovelace as a new customer.",
    "What is the weather in Rome? (broken)",
    "What is the weather in Paris? (stream)",
)
"""One workflow run each; the stub LLM answers by what the question asks for."""

STUB_MODEL = "stub-llm"
SYSTEM_PROMPT = "You are a helpful assistant. Use the tools when they help."

REGISTER_ARGUMENTS = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "phone": "+44 20 7946 0000",
    "street": "12 St James's Square",
    "city": "London",
    "postcode": "SW1Y 4JH",
    "country": "GB",
    "plan": "pro",
}


# -- the stub LLM: what it answers (common.stub_llm serves it) ----------------------------------


def stub_completion(request: dict[str, Any], number: int) -> dict[str, Any]:
    """The answer a tool-calling model would give, decided by the conversation so far."""
    messages = request.get("messages") or []
    last = messages[-1] if messages else {}
    text = str(last.get("content") or "")
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish = "stop"
    if last.get("role") == "tool":
        message["content"] = f"Here is what I found: {text}"
    elif not request.get("tools"):
        message["content"] = f"In short: {text[:80]}"
    elif "broken" in text:
        # A model that stops mid-arguments: the arguments are not JSON.
        message["tool_calls"] = [_call(number, "get_weather", '{"city": "Rome", "unit": "cel')]
        finish = "tool_calls"
    elif "weather" in text.lower():
        message["tool_calls"] = [_call(number, "get_weather", json.dumps({"city": "Paris"}))]
        finish = "tool_calls"
    elif "summarize" in text.lower():
        arguments = json.dumps({"text": "Hamlet, prince of Denmark, avenges his father."})
        message["tool_calls"] = [_call(number, "summarize_text", arguments)]
        finish = "tool_calls"
    elif "register" in text.lower():
        message["tool_calls"] = [_call(number, "register_user", json.dumps(REGISTER_ARGUMENTS))]
        finish = "tool_calls"
    else:
        message["content"] = "I am a helpful assistant. How can I help?"
    return common.chat_completion(
        message,
        finish,
        completion_id=f"chatcmpl-stub-{number}",
        created=1_750_000_000 + number,
        model=request.get("model", STUB_MODEL),
        prompt_tokens=sum(len(str(m.get("content") or "")) // 4 + 1 for m in messages),
        completion_tokens=12,
        logprobs=None,
    )


def _call(number: int, name: str, arguments: str) -> dict[str, Any]:
    return common.tool_call(f"call_{name}_{number}", name, arguments)


# -- the capture server: answers like Elasticsearch, keeps the bodies ---------------------------


@contextmanager
def elasticsearch_capture(out: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """A server answering like Elasticsearch 8 that writes each bulk or document body into
    `out`; yields its URL and the counts of bulk requests, document requests and documents."""
    counts = {"bulk": 0, "doc": 0, "documents": 0}
    lock = threading.Lock()

    class Handler(common.QuietHandler):
        def answer(self, status: int, body: object) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send(status, data, "application/json", {"x-elastic-product": "Elasticsearch"})

        def do_HEAD(self) -> None:
            self.answer(200, None)

        def do_GET(self) -> None:
            self.answer(
                200,
                {
                    "name": "capture",
                    "cluster_name": "capture",
                    "version": {"number": "8.19.3"},
                    "tagline": "You Know, for Search",
                },
            )

        def do_PUT(self) -> None:
            self.do_POST()

        def do_POST(self) -> None:
            body = self.read_body()
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            path = self.path.split("?", 1)[0]
            with lock:
                kind = "bulk" if path.endswith("/_bulk") else "doc"
                counts[kind] += 1
                number = counts[kind]
            if kind == "bulk":
                (out / f"bulk-{number}.ndjson").write_bytes(body)
                lines = [line for line in body.split(b"\n") if line.strip()]
                items = []
                for action_line in lines[::2]:
                    action, meta = next(iter(json.loads(action_line).items()))
                    items.append(
                        {
                            action: {
                                "_index": meta.get("_index"),
                                "_id": f"capture-{len(items)}",
                                "status": 201,
                                "result": "created",
                            }
                        }
                    )
                with lock:
                    counts["documents"] += len(items)
                self.answer(200, {"took": 1, "errors": False, "items": items})
            else:
                (out / f"doc-{number}.json").write_bytes(body)
                with lock:
                    counts["documents"] += 1
                index = path.strip("/").split("/", 1)[0]
                self.answer(
                    201,
                    {
                        "_index": index,
                        "_id": f"capture-doc-{number}",
                        "_version": 1,
                        "result": "created",
                    },
                )

    with common.serving(Handler) as url:
        yield url, counts


# -- NAT: tools, the workflow's configuration, the run ------------------------------------------


def register_tools() -> None:
    """Three NAT functions, registered the way a NAT plugin registers its tools, and the
    workflow's tool-calling loop."""
    from nat.builder.builder import Builder
    from nat.builder.framework_enum import LLMFrameworkEnum
    from nat.builder.function_info import FunctionInfo
    from nat.cli.register_workflow import register_function
    from nat.data_models.component_ref import LLMRef
    from nat.data_models.function import FunctionBaseConfig
    from pydantic import BaseModel, Field

    class WeatherInput(BaseModel):
        city: str = Field(description="City name")
        unit: str = Field("celsius", description="celsius or fahrenheit")

    async def get_weather(query: WeatherInput) -> str:
        return f"Sunny, 21 degrees {query.unit} in {query.city}."

    common.register_nat_tool(
        "flywheel_weather", get_weather, WeatherInput, "Current weather of a city."
    )

    # Nine parameters: one more than NAT's Data Flywheel record allows a tool (its "WAR for NIM
    # bug" limit of 8), so NAT leaves this tool out of the exported request.tools.
    class RegisterInput(BaseModel):
        first_name: str = Field(description="Given name")
        last_name: str = Field(description="Family name")
        email: str = Field(description="E-mail address")
        phone: str = Field(description="Phone number")
        street: str = Field(description="Street and number")
        city: str = Field(description="City")
        postcode: str = Field(description="Postal code")
        country: str = Field(description="ISO country code")
        plan: str = Field(description="Subscription plan")

    async def register_user(query: RegisterInput) -> str:
        return f"Registered {query.first_name} {query.last_name} on the {query.plan} plan."

    common.register_nat_tool(
        "flywheel_register_user", register_user, RegisterInput, "Register a customer."
    )

    class SummarizeConfig(FunctionBaseConfig, name="flywheel_summarize"):
        llm_name: LLMRef

    class SummarizeInput(BaseModel):
        text: str = Field(description="Text to summarize")

    @register_function(config_type=SummarizeConfig, framework_wrappers=[LLMFrameworkEnum.LANGCHAIN])
    async def summarize(config: SummarizeConfig, builder: Builder):  # type: ignore[no-untyped-def]
        llm = await builder.get_llm(config.llm_name, wrapper_type=LLMFrameworkEnum.LANGCHAIN)

        async def summarize_text(query: SummarizeInput) -> str:
            answer = await llm.ainvoke(
                [("system", "You summarize in one line."), ("human", query.text)]
            )
            return str(answer.content)

        yield FunctionInfo.from_fn(
            summarize_text, input_schema=SummarizeInput, description="Summarize a text."
        )

    # A plain tool-calling loop rather than NAT's own `tool_calling_agent` (LangGraph), which
    # loses every LLM call after the first tool node from the exporter: its later steps name an
    # already ended step as parent, and the span exporter drops them ("No parent span found"),
    # so it exports only each run's first call.
    common.register_tool_loop(
        "flywheel_agent", system_prompt=SYSTEM_PROMPT, description="Answers with the tools' help."
    )


def nat_config(
    llm_url: str, target: str, *, client_id: str, index: str, token: str | None
) -> dict[str, Any]:
    """A NAT workflow configuration, as a user writes it in YAML."""
    exporter: dict[str, Any] = {
        "_type": "data_flywheel_elasticsearch",
        "endpoint": target,
        "index": index,
        "client_id": client_id,
        "batch_size": 4,  # more than one bulk request for the run
        "flush_interval": 1.0,
    }
    if token:
        # NAT hands its `password` (a SecretStr) to the client as it is, and the client fails
        # joining it to the user name (TypeError): a header is how a token reaches the endpoint.
        exporter["headers"] = {
            "Authorization": f"ApiKey {token}",
            "Accept": "application/vnd.elasticsearch+json; compatible-with=8",
        }
    return common.nat_config(
        llm_url,
        STUB_MODEL,
        tracing={"flywheel": exporter},
        functions={
            "get_weather": {"_type": "flywheel_weather"},
            "register_user": {"_type": "flywheel_register_user"},
            "summarize_text": {"_type": "flywheel_summarize", "llm_name": "stub"},
        },
        workflow={
            "_type": "flywheel_agent",
            "llm_name": "stub",
            "tool_names": ["get_weather", "register_user", "summarize_text"],
        },
    )


class ClientObserver:
    """Counts what NAT hands to `AsyncElasticsearch` and keeps each answer (NAT discards it)."""

    def __init__(self) -> None:
        self.documents = 0
        self.requests = 0
        self.items: list[dict[str, Any]] = []

    def install(self) -> None:
        from elasticsearch import AsyncElasticsearch

        bulk, index = AsyncElasticsearch.bulk, AsyncElasticsearch.index
        observer = self

        async def observed_bulk(client: AsyncElasticsearch, *args: Any, **kwargs: Any) -> Any:
            operations = kwargs.get("operations") or []
            observer.documents += len(operations) // 2
            observer.requests += 1
            answer = await bulk(client, *args, **kwargs)
            observer.items.extend(answer.body.get("items", []))
            return answer

        async def observed_index(client: AsyncElasticsearch, *args: Any, **kwargs: Any) -> Any:
            observer.documents += 1
            observer.requests += 1
            answer = await index(client, *args, **kwargs)
            observer.items.append({"index": answer.body})
            return answer

        AsyncElasticsearch.bulk = observed_bulk  # type: ignore[method-assign]
        AsyncElasticsearch.index = observed_index  # type: ignore[method-assign]


def export(
    target: str, llm_url: str, *, client_id: str, index: str, token: str | None, work: Path
) -> list[str]:
    register_tools()
    config = nat_config(llm_url, target, client_id=client_id, index=index, token=token)
    return common.run_nat_workflow(
        config, work / "nat-config.yml", QUESTIONS, keep_going=True, user_id="flywheel-driver"
    )


def main() -> int:
    parser = common.driver_parser(
        __doc__,
        url_help="Elasticsearch endpoint NAT exports to (e.g. Flywheel's ingest)",
        fixtures_help="write what NAT sends to a capture server here",
        token_help="the endpoint's token (sent as `Authorization: ApiKey`)",
        client_id="nat-fixtures",
        client_id_help="NAT's `client_id`",
    )
    parser.add_argument("--index", default="flywheel", help="NAT's `index`")
    parser.add_argument("--debug", action="store_true", help="NAT's debug logs on stderr")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr)

    observer = ClientObserver()
    observer.install()
    with common.stub_llm(stub_completion) as llm, tempfile.TemporaryDirectory() as tmp:
        if args.url:
            outcomes = export(
                args.url,
                llm.url,
                client_id=args.client_id,
                index=args.index,
                token=args.token,
                work=Path(tmp),
            )
            print(
                json.dumps(
                    {
                        "exported": observer.documents,
                        "requests": observer.requests,
                        "items": observer.items,
                        "llm_calls": len(llm.asked),
                        "runs": outcomes,
                    }
                )
            )
            return 0
        out = common.fresh_directory(args.fixtures, "bulk-*.ndjson", "doc-*.json", "llm-*.json")
        with elasticsearch_capture(out) as (capture_url, counts):
            outcomes = export(
                capture_url,
                llm.url,
                client_id=args.client_id,
                index=args.index,
                token=None,
                work=Path(tmp),
            )
        for number, asked in enumerate(llm.asked, start=1):
            (out / f"llm-{number}.json").write_text(json.dumps(asked, indent=1) + "\n")
        manifest = {
            "producer": "nvidia-nat-data-flywheel 1.9.0 (DFWElasticsearchExporter)",
            "questions": list(QUESTIONS),
            "runs": outcomes,
            "llm_calls": len(llm.asked),
            "bulk_requests": counts["bulk"],
            "doc_requests": counts["doc"],
            "documents": counts["documents"],
        }
        common.write_manifest(out, manifest, indent=1)
        print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
