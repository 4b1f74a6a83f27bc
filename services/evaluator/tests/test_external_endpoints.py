"""External candidates (`candidate.endpoint`): called at their base URL with their headers,
concurrency, timeout and key; the key comes from the evaluator's environment only, is sent only
to the base URL registered with it, and never shows in settings, logs, records or errors. NMP
never sees them, whatever the backend."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr, ValidationError

from flywheel_contracts.events import EvalErrorKind
from flywheel_contracts.run_config import ExternalEndpoint, ToolChoice
from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_contracts.runtime.testing import captured_logs
from flywheel_evaluator.backends.native import NativeBackend
from flywheel_evaluator.backends.nmp import NmpBackend
from flywheel_evaluator.clients.chat import ChatEndpoints, Credentials
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.config import BackendKind, ChatSettings, EndpointKey, EvaluatorSettings
from flywheel_evaluator.endpoint_keys import endpoint_key
from flywheel_evaluator.errors import EvaluationFailed
from flywheel_evaluator.models import EvaluationJob

from .fakes import JUDGE, FakeNmp, MemoryContext, completion, job, tool_record

pytestmark = pytest.mark.unit

EXTERNAL_URL = "https://llm.example.com/v1"
SERVED = "qwen2.5-7b-instruct"
ENV = "FLYWHEEL_EVALUATOR_ENDPOINT_KEYS__"


@pytest.fixture
def key() -> str:
    return "sk-" + secrets.token_urlsafe(24)


# Settings and key resolution.


def test_keys_are_read_from_nested_environment_variables(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "llama"
    monkeypatch.setenv(f"{ENV}OPENROUTER__KEY", key)
    monkeypatch.setenv(f"{ENV}OPENROUTER__BASE_URL", EXTERNAL_URL)
    monkeypatch.setenv(f"{ENV}LOCAL_LLAMA__KEY_FILE", str(secret_file))
    monkeypatch.setenv(f"{ENV}LOCAL_LLAMA__BASE_URL", "http://llama.lan:8080")
    keys = EvaluatorSettings().endpoint_keys
    assert set(keys) == {"openrouter", "local_llama"}
    openrouter = keys["openrouter"]
    assert openrouter.base_url == EXTERNAL_URL and openrouter.key is not None
    assert openrouter.key.get_secret_value() == key
    assert keys["local_llama"].key_file == secret_file and keys["local_llama"].key is None


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({"KEY": "k"}, id="base-url-missing"),
        pytest.param({"BASE_URL": EXTERNAL_URL}, id="no-key"),
        pytest.param({"KEY": "k", "KEY_FILE": "/k", "BASE_URL": EXTERNAL_URL}, id="both"),
    ],
)
def test_a_key_needs_a_base_url_and_exactly_one_source(
    variables: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"{ENV}PROVIDER__{name}", value)
    with pytest.raises(ValidationError):
        EvaluatorSettings()


def test_a_key_is_given_for_its_base_url_whatever_the_name_case_or_trailing_slash(
    key: str,
) -> None:
    keys = {"openrouter": EndpointKey(base_url=EXTERNAL_URL + "/", key=SecretStr(key))}
    assert endpoint_key(keys, "OpenRouter", EXTERNAL_URL).get_secret_value() == key
    assert endpoint_key(keys, "openrouter", EXTERNAL_URL + "/").get_secret_value() == key


def test_a_key_file_is_read_at_use_without_its_trailing_newline(key: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text(key + "\n")
    keys = {"llama": EndpointKey(base_url="http://llama.lan:8080", key_file=secret_file)}
    # A URL without a path is called at /v1: the same place as the registered one.
    assert endpoint_key(keys, "llama", "http://llama.lan:8080/v1").get_secret_value() == key
    secret_file.write_text("rotated\r\n")
    assert endpoint_key(keys, "llama", "http://llama.lan:8080").get_secret_value() == "rotated"


@pytest.mark.parametrize(
    "base_url",
    [
        "https://attacker.example/v1",
        "https://llm.example.com/v2",
        "http://llm.example.com/v1",
        "https://llm.example.com.attacker.example/v1",
    ],
)
def test_a_key_named_for_another_base_url_is_refused(key: str, base_url: str) -> None:
    keys = {"openrouter": EndpointKey(base_url=EXTERNAL_URL, key=SecretStr(key))}
    with pytest.raises(EvaluationFailed) as refused:
        endpoint_key(keys, "openrouter", base_url)
    assert refused.value.kind is EvalErrorKind.JOB_FAILED
    message = refused.value.message
    assert f"'openrouter' is not registered for {base_url}" in message
    assert key not in message


def test_an_unknown_key_name_is_refused_saying_how_to_configure_it() -> None:
    with pytest.raises(EvaluationFailed) as refused:
        endpoint_key({}, "together", EXTERNAL_URL)
    assert "'together' is not configured" in refused.value.message
    assert f"{ENV}TOGETHER__KEY" in refused.value.message


def test_an_unreadable_or_empty_key_file_is_refused_without_its_content(tmp_path: Path) -> None:
    missing = {"k": EndpointKey(base_url=EXTERNAL_URL, key_file=tmp_path / "missing")}
    with pytest.raises(EvaluationFailed, match="cannot read"):
        endpoint_key(missing, "k", EXTERNAL_URL)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfesecret")
    with pytest.raises(EvaluationFailed) as refused:
        endpoint_key({"k": EndpointKey(base_url=EXTERNAL_URL, key_file=binary)}, "k", EXTERNAL_URL)
    assert "secret" not in refused.value.message
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(EvaluationFailed, match="is empty"):
        endpoint_key({"k": EndpointKey(base_url=EXTERNAL_URL, key_file=empty)}, "k", EXTERNAL_URL)


def test_settings_and_credentials_never_show_the_key(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{ENV}OPENROUTER__KEY", key)
    monkeypatch.setenv(f"{ENV}OPENROUTER__BASE_URL", EXTERNAL_URL)
    settings = EvaluatorSettings()
    credentials = Credentials(
        api_key=endpoint_key(settings.endpoint_keys, "openrouter", EXTERNAL_URL)
    )
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(settings.endpoint_keys),
        repr(credentials),
        str(credentials),
    ]
    assert all(key not in text for text in shown)
    assert credentials.headers() == {"Authorization": f"Bearer {key}"}


# Evaluations of an external candidate.


def external_job(dataset: Any, **endpoint: Any) -> EvaluationJob:
    fields: dict[str, Any] = {
        "base_url": EXTERNAL_URL,
        "api_key": "openrouter",
        "headers": {"HTTP-Referer": "https://flywheel.example"},
        "concurrency": 2,
        "timeout_seconds": 12.5,
        "model": SERVED,
        **endpoint,
    }
    return job(
        dataset,
        base_url=fields["base_url"],
        target_model=SERVED,
        endpoint=ExternalEndpoint(**fields),
    )


def keyed(key: str, backend: BackendKind = BackendKind.NATIVE) -> EvaluatorSettings:
    return EvaluatorSettings(
        backend=backend,
        chat=ChatSettings(concurrency=16, attempts=1),
        endpoint_keys={"openrouter": EndpointKey(base_url=EXTERNAL_URL, key=SecretStr(key))},
    )


class ExternalServer:
    """Every request as seen on the wire, and the most candidate requests ever in flight."""

    def __init__(self, fake: FakeNmp, delay_s: float = 0.01) -> None:
        self.fake = fake
        self.delay_s = delay_s
        self.seen: list[httpx.Request] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.host != "llm.example.com":
            return self.fake.handle(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)  # long enough for the others to pile up
            return self.fake.handle(request)
        finally:
            self.in_flight -= 1

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def chat(self, host: str) -> list[httpx.Request]:
        return [
            r for r in self.seen if r.url.host == host and r.url.path.endswith("/chat/completions")
        ]


def right_call(body: dict[str, Any]) -> httpx.Response:
    i = int(body["messages"][-1]["content"].split()[-1])
    call = {"name": "get_weather", "arguments": {"city": f"city-{i}", "days": i % 5}}
    return completion({"content": None, "tool_calls": [{"function": call}]}, completion_tokens=8)


def judge(_body: dict[str, Any]) -> httpx.Response:
    return completion({"content": "RATING: 1"})


async def run(
    server: ExternalServer, contexts: list[MemoryContext], config: EvaluatorSettings
) -> list[Any]:
    transport = server.transport()
    async with NmpClient(server.fake.settings, transport=transport) as nmp:
        endpoints = ChatEndpoints(config.chat, transport=transport)
        datasets = DatasetFiles(nmp, config.eval_file)
        native = NativeBackend(datasets, endpoints, config)
        backend = (
            native
            if config.backend is BackendKind.NATIVE
            else NmpBackend(nmp, datasets, native, config)
        )
        try:
            return await asyncio.gather(*(backend.evaluate(ctx) for ctx in contexts))
        finally:
            await endpoints.aclose()


async def test_an_external_candidate_is_called_with_its_key_headers_model_and_timeout(
    key: str,
) -> None:
    server = ExternalServer(FakeNmp(right_call, judge))
    ctx = MemoryContext(external_job(server.fake.upload([tool_record(i) for i in range(4)])))
    [evaluated] = await run(server, [ctx], keyed(key))

    assert all(s.value == 1.0 for s in evaluated.scores)
    calls = server.chat("llm.example.com")
    assert len(calls) == 4
    for request in calls:
        assert str(request.url) == f"{EXTERNAL_URL}/chat/completions"
        assert request.headers["authorization"] == f"Bearer {key}"
        assert request.headers["http-referer"] == "https://flywheel.example"
        assert json.loads(request.content)["model"] == SERVED
        assert request.extensions["timeout"]["read"] == 12.5
    others = [r for r in server.seen if r.url.host != "llm.example.com"]
    assert others and all("authorization" not in r.headers for r in others)
    assert all(json.loads(r.content)["model"] == JUDGE for r in server.chat("candidate.test"))


@pytest.mark.parametrize("choice", list(ToolChoice))
async def test_an_external_candidate_is_asked_with_its_endpoints_tool_choice(
    key: str, choice: ToolChoice
) -> None:
    server = ExternalServer(FakeNmp(right_call, judge))
    ctx = MemoryContext(external_job(server.fake.upload([tool_record(0)]), tool_choice=choice))
    await run(server, [ctx], keyed(key))
    [request] = server.chat("llm.example.com")
    assert json.loads(request.content)["tool_choice"] == choice.value


async def test_an_external_candidate_without_a_key_name_is_called_without_authorization(
    key: str,
) -> None:
    server = ExternalServer(FakeNmp(right_call, judge))
    ctx = MemoryContext(
        external_job(server.fake.upload([tool_record(0)]), api_key=None, headers={})
    )
    await run(server, [ctx], keyed(key))
    [request] = server.chat("llm.example.com")
    assert "authorization" not in request.headers


async def test_the_endpoints_concurrency_holds_across_its_evaluations(key: str) -> None:
    server = ExternalServer(FakeNmp(right_call, judge))
    dataset = server.fake.upload([tool_record(i) for i in range(12)])
    contexts = [
        MemoryContext(external_job(dataset).model_copy(update={"id": f"e{i}"})) for i in range(3)
    ]
    await run(server, contexts, keyed(key))
    assert len(server.chat("llm.example.com")) == 36
    assert server.max_in_flight == 2  # concurrency 2, though chat.concurrency is 16


async def test_a_key_named_for_another_url_fails_the_evaluation_before_any_request(
    key: str,
) -> None:
    server = ExternalServer(FakeNmp(right_call, judge))
    dataset = server.fake.upload([tool_record(0)])
    evil = external_job(dataset, base_url="https://collector.attacker.example/v1")
    ctx = MemoryContext(evil)
    with pytest.raises(EvaluationFailed) as refused:
        await run(server, [ctx], keyed(key))
    assert refused.value.kind is EvalErrorKind.JOB_FAILED
    assert "not registered for https://collector.attacker.example/v1" in refused.value.message
    assert not [r for r in server.seen if r.url.path.endswith("/chat/completions")]
    assert all(key not in str(r.headers) for r in server.seen)
    assert ctx.started_ids == []


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    with captured_logs() as output:
        yield output


async def test_an_endpoint_echoing_the_key_has_it_masked_in_records_and_logs(
    key: str, log_output: io.StringIO
) -> None:
    def echo_key(_body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(401, json={"error": f"invalid key Bearer {key}"})

    server = ExternalServer(FakeNmp(echo_key, judge))
    ctx = MemoryContext(external_job(server.fake.upload([tool_record(i) for i in range(4)])))
    with pytest.raises(EvaluationFailed) as failure:
        await run(server, [ctx], keyed(key))
    errors = [r.error or "" for r in ctx.saved.values()]
    structlog.get_logger("test").warning(
        "evaluation.failed", error=failure.value.message, errors=errors, job=ctx.job
    )
    assert failure.value.kind is EvalErrorKind.JOB_FAILED  # all four failed
    assert "401" in failure.value.message and "**********" in failure.value.message
    assert all("401" in e for e in errors)
    assert key not in failure.value.message
    assert all(key not in r.model_dump_json() for r in ctx.saved.values())
    assert "evaluation.failed" in log_output.getvalue()
    assert key not in log_output.getvalue()


async def test_the_nmp_backend_evaluates_an_external_candidate_natively(key: str) -> None:
    server = ExternalServer(FakeNmp(right_call, judge))
    ctx = MemoryContext(external_job(server.fake.upload([tool_record(i) for i in range(3)])))
    [evaluated] = await run(server, [ctx], keyed(key, BackendKind.NMP))
    assert len(server.chat("llm.example.com")) == 3
    nmp_calls = [r for r in server.seen if "/evaluation/" in r.url.path]
    assert nmp_calls == [], "NMP is never told about an external candidate"
    assert ctx.nmp_jobs == [] and evaluated.job_id == ctx.job.id
    assert evaluated.usage.completion_tokens_per_second is not None
