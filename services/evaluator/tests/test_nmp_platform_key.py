"""The NMP platform key (FLYWHEEL_EVALUATOR_NMP__API_KEY) on the evaluator's own chat clients:
an NMP-served candidate and a judge on the NIM proxy get it (and the NMP CA bundle); a candidate
or judge anywhere else never does, and a judge key of its own wins."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from flywheel_contracts.runtime.nmp import NmpClient, NmpSettings
from flywheel_evaluator.backends.native import NativeBackend, judge_credentials, nim_credentials
from flywheel_evaluator.clients.chat import NO_CREDENTIALS, ChatEndpoints
from flywheel_evaluator.clients.datasets import DatasetFiles
from flywheel_evaluator.config import ChatSettings, EvaluatorSettings, JudgeSettings
from flywheel_evaluator.errors import EvaluationFailed

from .fakes import FakeNmp, MemoryContext, completion, job, tool_record

pytestmark = pytest.mark.unit

NIM_V1 = "http://nim.test/v1"


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(24)


def _settings(key: str, **changes: object) -> EvaluatorSettings:
    return EvaluatorSettings.model_validate(
        {
            "chat": ChatSettings(concurrency=2, backoff_s=0.0, attempts=1),
            "nmp": NmpSettings(api_key=SecretStr(key), ca_bundle=Path("/etc/nmp/ca.pem")),
            **changes,
        }
    )


def test_a_judge_on_the_nim_proxy_gets_the_platform_key_and_ca(key: str) -> None:
    credentials = judge_credentials(_settings(key))
    assert credentials.headers() == {"Authorization": f"Bearer {key}"}
    assert credentials.ca_bundle == Path("/etc/nmp/ca.pem")


def test_a_judge_key_and_ca_of_its_own_win(key: str) -> None:
    judge = JudgeSettings(api_key=SecretStr("judge-key"), ca_bundle=Path("/judge-ca.pem"))
    credentials = judge_credentials(_settings(key, judge=judge))
    assert credentials.headers() == {"Authorization": "Bearer judge-key"}
    assert credentials.ca_bundle == Path("/judge-ca.pem")


def test_a_remote_judge_never_gets_the_platform_key(key: str) -> None:
    settings = _settings(key, judge=JudgeSettings(base_url="https://judge.test/v1"))
    credentials = judge_credentials(settings)
    assert credentials.headers() == {}
    assert credentials.ca_bundle is None


def test_candidates_get_the_key_on_the_nim_proxy_only(key: str) -> None:
    settings = _settings(key)
    assert nim_credentials(settings, NIM_V1).headers() == {"Authorization": f"Bearer {key}"}
    assert nim_credentials(settings, "http://candidate.test/v1") is NO_CREDENTIALS


def test_an_unreadable_platform_key_file_fails_the_evaluation_naming_the_file(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nmp-key"
    settings = EvaluatorSettings(nmp=NmpSettings(api_key_file=missing))
    with pytest.raises(EvaluationFailed, match=f"the NMP platform key: cannot read {missing}"):
        nim_credentials(settings, NIM_V1)


def other_arguments(body: dict[str, Any]) -> httpx.Response:
    """The right function with other arguments: the judge has to weigh every record."""
    name = body["tools"][0]["function"]["name"]
    call = {"function": {"name": name, "arguments": '{"city": "Elsewhere", "days": 9}'}}
    return completion({"content": None, "tool_calls": [call]})


@pytest.mark.parametrize("candidate_url", [NIM_V1, "http://candidate.test/v1"])
async def test_an_evaluation_sends_the_key_to_the_nim_proxy_only(
    key: str, candidate_url: str
) -> None:
    seen: list[httpx.Request] = []
    fake = FakeNmp(other_arguments, lambda _body: completion({"content": "RATING: 1"}))

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return fake.handle(request)

    transport = httpx.MockTransport(handle)
    config = _settings(key, nmp=NmpSettings(api_key=SecretStr(key)))
    dataset = fake.upload([tool_record(i) for i in range(2)])
    ctx = MemoryContext(job(dataset, base_url=candidate_url))
    async with NmpClient(config.nmp, transport=transport) as nmp:
        endpoints = ChatEndpoints(config.chat, transport=transport)
        backend = NativeBackend(DatasetFiles(nmp, config.eval_file), endpoints, config)
        try:
            await backend.evaluate(ctx)
        finally:
            await endpoints.aclose()
    for request in seen:
        keyed = request.headers.get("authorization") == f"Bearer {key}"
        host = request.url.host
        if host == "nim.test":
            assert keyed, request.url  # the judge, and the candidate when NMP serves it
        elif host == "candidate.test":
            assert "authorization" not in request.headers, request.url
        else:
            assert "authorization" not in request.headers, request.url  # the Data Store
    hosts = {r.url.host for r in seen}
    assert {"data-store.test", "nim.test", httpx.URL(candidate_url).host} <= hosts
