"""The NMP platform key (`api_key` / `api_key_file`) and CA bundle (`ca_bundle`): the key goes to
the platform and the NIM proxy only, never to the Data Store (which keeps `hf_token`) or any
other host; a refused key is a permanent error, not minutes of retries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.tests.recording_server import Certificates, make_certificates, recording_server
from flywheel_contracts.errors import PermanentError
from flywheel_contracts.runtime.nmp import (
    NmpClient,
    NmpRetryableError,
    NmpSettings,
    NmpUnauthorized,
)
from flywheel_contracts.runtime.nmp.testing import RecordingTransport
from flywheel_contracts.runtime.secrets import SecretFileError

KEY = "nmp-platform-key-7f3a9c"
HF_TOKEN = "hf-token-5b1e"
NEMO, NIM, DATASTORE = "http://nemo.test", "http://nim.test", "http://data-store.test"
MODELS = {"object": "list", "data": [{"id": "meta/llama-3.2-1b-instruct"}]}


class _Service(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_TEST_", env_nested_delimiter="__", hide_input_in_errors=True
    )

    nmp: NmpSettings = NmpSettings()


class _Seen:
    """A MockTransport answering 200 `{}` (models for /v1/models), keeping each request."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = MODELS if request.url.path == "/v1/models" else {}
        return httpx.Response(self.status, json=body)

    def authorization(self, host: str) -> set[str | None]:
        return {r.headers.get("authorization") for r in self.requests if r.url.host == host}


async def _touch_every_host(nmp: NmpClient) -> None:
    await nmp.entity_store.create_namespace()  # platform
    await nmp.nim.list_models()  # NIM proxy
    await nmp.data_store.create_namespace()  # Data Store


@pytest.mark.unit
async def test_the_key_goes_to_the_platform_and_the_nim_proxy_only() -> None:
    seen = _Seen()
    settings = NmpSettings(api_key=SecretStr(KEY), hf_token=SecretStr(HF_TOKEN))
    async with NmpClient(settings, transport=httpx.MockTransport(seen)) as nmp:
        await _touch_every_host(nmp)
    assert seen.authorization("nemo.test") == {f"Bearer {KEY}"}
    assert seen.authorization("nim.test") == {f"Bearer {KEY}"}
    assert seen.authorization("data-store.test") == {f"Bearer {HF_TOKEN}"}


@pytest.mark.unit
async def test_without_keys_nothing_is_sent() -> None:
    seen = _Seen()
    async with NmpClient(NmpSettings(), transport=httpx.MockTransport(seen)) as nmp:
        await _touch_every_host(nmp)
    assert {r.headers.get("authorization") for r in seen.requests} == {None}


@pytest.mark.unit
async def test_the_key_is_read_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(f"{KEY}\n")
    seen = _Seen()
    settings = NmpSettings(api_key_file=tmp_path / "key")
    async with NmpClient(settings, transport=httpx.MockTransport(seen)) as nmp:
        await nmp.nim.list_models()
    assert seen.authorization("nim.test") == {f"Bearer {KEY}"}


@pytest.mark.unit
def test_an_unreadable_key_file_stops_the_client_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="missing-key"):
        NmpClient(NmpSettings(api_key_file=tmp_path / "missing-key"))


@pytest.mark.unit
@pytest.mark.parametrize(
    "values",
    [{"api_key": KEY, "api_key_file": "/run/secrets/nmp"}, {"api_key": " "}],
)
def test_ambiguous_or_empty_keys_are_refused_without_echoing_them(
    values: dict[str, object],
) -> None:
    with pytest.raises(ValidationError) as refused:
        NmpSettings.model_validate(values)
    assert KEY not in str(refused.value)


@pytest.mark.unit
def test_the_key_stays_out_of_reprs_and_start_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_TEST_NMP__API_KEY", KEY)
    monkeypatch.setenv("FLYWHEEL_TEST_NMP__CA_BUNDLE", "/etc/nmp/ca.pem")
    nmp = _Service().nmp
    assert nmp.platform_key() == SecretStr(KEY)
    assert nmp.ca_bundle == Path("/etc/nmp/ca.pem")
    assert KEY not in repr(nmp) and KEY not in str(nmp) and KEY not in nmp.model_dump_json()
    monkeypatch.setenv("FLYWHEEL_TEST_NMP__API_KEY_FILE", "/run/secrets/nmp")
    with pytest.raises(ValidationError) as refused:
        _Service()
    assert KEY not in str(refused.value)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "on_proxy"),
    [
        ("http://nim.test/v1", True),
        ("http://nim.test", True),
        ("http://NIM.test/v1/", True),
        ("https://nim.test/v1", False),
        ("http://nim.test:8000/v1", False),
        ("http://nim.test.evil.example/v1", False),
        ("http://integrate.api.nvidia.com/v1", False),
    ],
)
def test_what_counts_as_the_nim_proxy(url: str, on_proxy: bool) -> None:
    assert NmpSettings().is_nim_proxy(url) is on_proxy


@pytest.mark.unit
def test_a_proxy_below_a_path_covers_that_path_only() -> None:
    settings = NmpSettings(nim_base_url="http://gateway.test/nim")
    assert settings.is_nim_proxy("http://gateway.test/nim/v1")
    assert not settings.is_nim_proxy("http://gateway.test/nimble/v1")
    assert not settings.is_nim_proxy("http://gateway.test/v1")


@pytest.mark.unit
@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_permanent_and_not_retried(status: int) -> None:
    seen = _Seen(status)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    settings = NmpSettings(api_key=SecretStr(KEY), retry_attempts=8, retry_backoff_s=30)
    async with NmpClient(settings, transport=httpx.MockTransport(seen), sleep=sleep) as nmp:
        with pytest.raises(NmpUnauthorized) as refused:
            await nmp.nim.list_models()
    assert isinstance(refused.value, PermanentError)
    assert len(seen.requests) == 1 and delays == []
    assert "NMP__API_KEY" in str(refused.value) and KEY not in str(refused.value)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.mark.integration
async def test_https_hosts_are_trusted_through_the_ca_bundle(certificates: Certificates) -> None:
    with recording_server(certificates, body=MODELS, headers={}) as server:
        trusted = NmpSettings(
            nim_base_url=server.url, api_key=SecretStr(KEY), ca_bundle=certificates.ca
        )
        async with NmpClient(trusted) as nmp:
            assert (await nmp.nim.list_models()).ids == {"meta/llama-3.2-1b-instruct"}
        assert server.authorizations() == [f"Bearer {KEY}"]
        untrusted = NmpSettings(nim_base_url=server.url, api_key=SecretStr(KEY), retry_attempts=1)
        async with NmpClient(untrusted) as nmp:
            with pytest.raises(NmpRetryableError, match="CERTIFICATE_VERIFY_FAILED"):
                await nmp.nim.list_models()
        assert len(server.requests) == 1  # the key never went out without a verified server


@pytest.fixture(scope="module")
def keyed_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An emulator process of its own, on a free port, wanting KEY (NMP_EMULATOR_API_KEY)."""
    from flywheel_nmp_emulator.testing import emulator_process, free_port

    port = free_port()
    state = tmp_path_factory.mktemp("keyed-emulator") / "state.json"
    with emulator_process(state, port, extra_env={"NMP_EMULATOR_API_KEY": KEY}):
        yield f"http://127.0.0.1:{port}"


def _emulated(url: str, **values: object) -> NmpSettings:
    return NmpSettings.model_validate(
        {
            "nemo_base_url": url,
            "nim_base_url": url,
            "datastore_base_url": url,
            "namespace": f"key-{uuid.uuid4().hex[:10]}",
            **values,
        }
    )


@pytest.mark.integration
async def test_the_client_with_the_key_works_against_an_emulator_wanting_it(
    keyed_emulator: str,
) -> None:
    wire = RecordingTransport(httpx.AsyncHTTPTransport())
    async with NmpClient(_emulated(keyed_emulator, api_key=KEY), transport=wire) as nmp:
        await _touch_every_host(nmp)
        await nmp.entity_store.create_dataset("keyed", description="behind the key")
        assert (await nmp.entity_store.get_dataset("keyed")).name == "keyed"
    for sent in wire.sent:
        to_data_store = sent.url.path.startswith(("/v1/hf/", "/v1/datastore/"))
        # The Data Store shares the emulator's port but never gets the platform key.
        expected = None if to_data_store else f"Bearer {KEY}"
        assert sent.headers.get("authorization") == expected, sent.url


@pytest.mark.integration
@pytest.mark.parametrize("key", [None, "not-the-key"])
async def test_without_the_right_key_the_client_fails_at_once_and_for_good(
    keyed_emulator: str, key: str | None
) -> None:
    wire = RecordingTransport(httpx.AsyncHTTPTransport())
    settings = _emulated(keyed_emulator, api_key=key, retry_attempts=8, retry_backoff_s=30)
    async with NmpClient(settings, transport=wire) as nmp:
        with pytest.raises(NmpUnauthorized) as refused:
            await nmp.entity_store.create_namespace()
    assert refused.value.status_code == 401
    assert isinstance(refused.value, PermanentError)
    assert len(wire.sent) == 1  # no retry: backoff_s=30 would have made this test hang
    assert "credentials refused" in str(refused.value)
    assert KEY not in str(refused.value)
