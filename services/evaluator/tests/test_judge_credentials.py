"""A remote judge reached with an API key (FLYWHEEL_EVALUATOR_JUDGE__API_KEY): the key goes as
`Authorization: Bearer` to the judge's base URL only, never to a candidate or an NMP host; the nmp
backend names it in the job's judge `api_endpoint`; settings, reprs, errors and logs never show
it."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr

from flywheel_contracts.runtime.nmp import NmpClient, NmpRequestRejected
from flywheel_contracts.runtime.testing import captured_logs
from flywheel_evaluator.backends.native import NativeBackend, judge_credentials
from flywheel_evaluator.backends.nmp import NmpBackend
from flywheel_evaluator.backends.nmp_config import judge_model, mask
from flywheel_evaluator.clients.chat import ChatEndpoints, Credentials
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.config import (
    ChatSettings,
    EvaluatorSettings,
    JudgeSettings,
    NmpBackendSettings,
)
from flywheel_evaluator.errors import EvaluationFailed

from .fakes import JUDGE, FakeNmp, MemoryContext, completion, job, tool_record

pytestmark = pytest.mark.unit

JUDGE_URL = "https://judge.test/v1"


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(24)


def keyed(key: str, base_url: str | None = JUDGE_URL, **changes: Any) -> EvaluatorSettings:
    return EvaluatorSettings(
        chat=ChatSettings(concurrency=2, backoff_s=0.0, attempts=1),
        judge=JudgeSettings(base_url=base_url, api_key=SecretStr(key)),
        **changes,
    )


def other_arguments(body: dict[str, Any]) -> httpx.Response:
    """The right function with other arguments: the judge has to weigh every record."""
    name = body["tools"][0]["function"]["name"]
    call = {"function": {"name": name, "arguments": '{"city": "Elsewhere", "days": 9}'}}
    return completion({"content": None, "tool_calls": [call]})


class Seen:
    """Every request's host, path, chat model and Authorization header."""

    def __init__(self, fake: FakeNmp) -> None:
        self.fake = fake
        self.requests: list[tuple[str, str, str | None, str | None]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        model = None
        if request.url.path.endswith("/chat/completions"):
            model = json.loads(request.content)["model"]
        auth = request.headers.get("authorization")
        self.requests.append((request.url.host, request.url.path, model, auth))
        return self.fake.handle(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def with_key(self) -> list[tuple[str, str, str | None]]:
        return [(host, path, model) for host, path, model, auth in self.requests if auth]


async def native_run(seen: Seen, ctx: MemoryContext, config: EvaluatorSettings) -> Any:
    transport = seen.transport()
    async with NmpClient(seen.fake.settings, transport=transport) as nmp:
        endpoints = ChatEndpoints(config.chat, transport=transport)
        try:
            backend = NativeBackend(DatasetFiles(nmp, config.eval_file), endpoints, config)
            return await backend.evaluate(ctx)
        finally:
            await endpoints.aclose()


async def test_the_key_goes_to_the_judge_and_nowhere_else(key: str) -> None:
    fake = FakeNmp(other_arguments, lambda _b: completion({"content": "RATING: 1"}))
    seen = Seen(fake)
    records = [tool_record(i) for i in range(4)]
    evaluated = await native_run(seen, MemoryContext(job(fake.upload(records))), keyed(key))

    assert any(s.name == "tool_calling_correctness" for s in evaluated.scores)
    judged = [r for r in seen.requests if r[2] == JUDGE]
    assert len(judged) == 4
    assert all(
        (host, path, auth) == ("judge.test", "/v1/chat/completions", f"Bearer {key}")
        for host, path, _model, auth in judged
    )
    assert seen.with_key() == [("judge.test", "/v1/chat/completions", JUDGE)] * 4
    candidates = [r for r in seen.requests if r[2] is not None and r[2] != JUDGE]
    assert len(candidates) == 4
    assert all(auth is None for *_rest, auth in candidates)


async def test_a_candidate_on_the_judges_base_url_gets_no_key(key: str) -> None:
    """The default judge is the NIM proxy, where candidates are served too: same URL, separate
    endpoints."""
    fake = FakeNmp(other_arguments, lambda _b: completion({"content": "RATING: 0"}))
    seen = Seen(fake)
    records = [tool_record(i) for i in range(3)]
    config = keyed(key, base_url="http://candidate.test/v1")  # = fakes.BASE_URL
    await native_run(seen, MemoryContext(job(fake.upload(records))), config)
    assert {r[0] for r in seen.requests if r[2] is not None} == {"candidate.test"}
    assert [r[2] for r in seen.requests if r[3]] == [JUDGE] * 3
    assert all(auth is None for _h, _p, model, auth in seen.requests if model != JUDGE)


async def test_a_judge_without_key_is_called_without_authorization() -> None:
    fake = FakeNmp(other_arguments, lambda _b: completion({"content": "RATING: 1"}))
    seen = Seen(fake)
    config = EvaluatorSettings(judge=JudgeSettings(base_url=JUDGE_URL))
    await native_run(seen, MemoryContext(job(fake.upload([tool_record(0)]))), config)
    assert [r[0] for r in seen.requests if r[2] == JUDGE] == ["judge.test"]
    assert not seen.with_key()


def test_settings_from_the_environment_never_show_the_key(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("FLYWHEEL_EVALUATOR_JUDGE__API_KEY", key)
    monkeypatch.setenv("FLYWHEEL_EVALUATOR_JUDGE__BASE_URL", JUDGE_URL)
    monkeypatch.setenv("FLYWHEEL_EVALUATOR_JUDGE__CA_BUNDLE", str(bundle))
    settings = EvaluatorSettings()
    assert settings.judge.api_key is not None
    assert settings.judge.api_key.get_secret_value() == key
    assert settings.judge.ca_bundle == bundle
    credentials = judge_credentials(settings)
    shown = [
        repr(settings),
        str(settings),
        repr(settings.judge),
        str(settings.judge),
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
        repr(credentials),
        str(credentials),
    ]
    for text in shown:
        assert key not in text
    assert credentials.headers() == {"Authorization": f"Bearer {key}"}


def test_a_ca_bundle_is_what_the_judges_tls_trusts(tmp_path: Path) -> None:
    bundle = tmp_path / "missing.pem"
    with pytest.raises(FileNotFoundError):
        Credentials(ca_bundle=bundle).tls()
    assert Credentials().tls() is None


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the service's logging (JSON lines, as configured in production) writes."""
    with captured_logs() as output:
        yield output


async def test_logs_of_a_refused_judge_never_show_the_key(
    key: str, log_output: io.StringIO
) -> None:
    """A judge answering 401 fails its scorings (never a zero); the failures recorded, and what
    is logged about them and about the settings, name no key."""

    def refuse(_body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "Incorrect API key provided."}})

    fake = FakeNmp(other_arguments, refuse)
    seen = Seen(fake)
    config = keyed(key)
    ctx = MemoryContext(job(fake.upload([tool_record(i) for i in range(3)])))
    structlog.get_logger("test").info("settings", settings=config, judge=config.judge)
    evaluated = await native_run(seen, ctx, config)
    errors = [r.judge_error or "" for r in ctx.saved.values()]
    structlog.get_logger("test").warning("judge.failed", errors=errors)
    logging.getLogger("httpx").info("request sent %s", seen.requests[-1][:3])

    out = log_output.getvalue()
    assert "judge.failed" in out
    assert "SecretStr('**********')" in out
    assert "tool_calling_correctness" not in {s.name for s in evaluated.scores}
    assert all("401" in error for error in errors), errors
    assert key not in out
    assert all(key not in r.model_dump_json() for r in ctx.saved.values())
    assert seen.with_key()  # the key was sent, only not shown


def test_the_nmp_job_names_a_remote_judge_by_its_endpoint(key: str) -> None:
    endpoint = judge_model(keyed(key), "meta/judge-a")
    assert endpoint == {
        "api_endpoint": {
            "url": f"{JUDGE_URL}/chat/completions",
            "model_id": "meta/judge-a",
            "api_key": key,
        }
    }
    # The NIM proxy's own judge stays a model name.
    assert judge_model(EvaluatorSettings(), None) == EvaluatorSettings().judge.model
    keyless = judge_model(EvaluatorSettings(judge=JudgeSettings(base_url=JUDGE_URL)), JUDGE)
    assert keyless == {"api_endpoint": {"url": f"{JUDGE_URL}/chat/completions", "model_id": JUDGE}}
    assert mask(f"echo {key}!", SecretStr(key)) == "echo **********!"


def candidate(_body: dict[str, Any]) -> httpx.Response:
    return completion({"content": "ok"})


async def nmp_run(seen: Seen, ctx: MemoryContext, config: EvaluatorSettings) -> Any:
    transport = seen.transport()

    async def nothing(_: float) -> None:
        return None

    async with NmpClient(seen.fake.settings, transport=transport, sleep=nothing) as nmp:
        endpoints = ChatEndpoints(config.chat, transport=transport)
        datasets = DatasetFiles(nmp, config.eval_file)
        backend = NmpBackend(
            nmp, datasets, NativeBackend(datasets, endpoints, config), config, sleep=nothing
        )
        try:
            return await backend.evaluate(ctx)
        finally:
            await endpoints.aclose()


async def test_the_nmp_backend_sends_the_judge_endpoint_to_nmp_and_no_key_elsewhere(
    key: str,
) -> None:
    launched: list[dict[str, Any]] = []
    fake = FakeNmp(candidate, candidate)
    seen = Seen(fake)
    original = seen.handle

    def record_launch(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/evaluation/jobs":
            launched.append(json.loads(request.content))
        return original(request)

    seen.handle = record_launch  # type: ignore[method-assign]
    config = keyed(key, nmp_backend=NmpBackendSettings(usage_sample=3))
    ctx = MemoryContext(job(fake.upload([tool_record(i) for i in range(5)])))
    evaluated = await nmp_run(seen, ctx, config)

    assert evaluated.usage.requests == 3
    [body] = launched
    metrics = body["config"]["tasks"]["custom-tool-calling"]["metrics"]
    expected = {
        "api_endpoint": {"url": f"{JUDGE_URL}/chat/completions", "model_id": JUDGE, "api_key": key}
    }
    assert metrics["correctness"]["params"]["model"] == expected
    assert metrics["tool-calling-accuracy"]["params"]["model"] == expected
    assert body["target"]["model"] != expected  # the candidate is named, never given the key
    assert key not in json.dumps(body["target"])
    # In the config NMP receives, not in any request header: not the usage sample's candidate
    # calls, not NMP's hosts.
    assert not seen.with_key()


async def test_an_nmp_error_echoing_the_config_has_the_key_masked(key: str) -> None:
    fake = FakeNmp(candidate, candidate)
    seen = Seen(fake)
    original = seen.handle

    def refuse_launch(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/evaluation/jobs":
            original(request)
            config = json.loads(request.content)["config"]
            echoed = config["tasks"]["custom-tool-calling"]["metrics"]["correctness"]["params"]
            return httpx.Response(422, json={"detail": [{"msg": "refused", "input": echoed}]})
        return original(request)

    seen.handle = refuse_launch  # type: ignore[method-assign]
    ctx = MemoryContext(job(fake.upload([tool_record(0)])))
    with pytest.raises(NmpRequestRejected) as refused:
        await nmp_run(seen, ctx, keyed(key))
    error = refused.value
    assert "422" in str(error)
    assert "**********" in str(error)
    assert key not in str(error) + error.body
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_a_judge_key_from_a_mounted_file_is_read_at_use_with_its_headers(
    key: str, tmp_path: Path
) -> None:
    secret_file = tmp_path / "judge-key"
    secret_file.write_text(f"{key}\n")
    settings = EvaluatorSettings(
        judge=JudgeSettings(
            base_url=JUDGE_URL, api_key_file=secret_file, headers={"X-Title": "flywheel"}
        )
    )
    assert judge_credentials(settings).headers() == {
        "X-Title": "flywheel",
        "Authorization": f"Bearer {key}",
    }
    secret_file.write_text("rotated\n")
    assert judge_credentials(settings).headers()["Authorization"] == "Bearer rotated"
    assert key not in repr(settings)


def test_an_unreadable_judge_key_file_fails_the_evaluation_naming_the_file(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing"
    settings = EvaluatorSettings(judge=JudgeSettings(api_key_file=missing))
    with pytest.raises(EvaluationFailed, match=f"the judge's key: cannot read {missing}"):
        judge_credentials(settings)


def test_a_judge_key_is_given_once(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most one of JUDGE__API_KEY and JUDGE__API_KEY_FILE"):
        EvaluatorSettings(
            judge=JudgeSettings(api_key=SecretStr(key), api_key_file=tmp_path / "key")
        )
