"""Backends for the NMP contract tests.

Every contract test runs twice: against RecordedNmp (shapes from nmp-contract.md, marker unit)
and against the live NMP emulator of the local stack (marker integration). Both go through a
RecordingTransport, so the same assertions about what went on the wire hold for both.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from flywheel_contracts.runtime.nmp import NmpClient, NmpSettings
from flywheel_contracts.runtime.nmp.testing import RecordedNmp, RecordingTransport
from flywheel_contracts.runtime.nmp.testing.sdk import request_problems

RECORDED = "recorded"
LIVE = "live"


@pytest.fixture(scope="session")
def live_nmp_url(nmp_url: str) -> str:
    """The stack's emulator; a stack that does not come up fails these tests, never skips them."""
    response = httpx.get(f"{nmp_url}/v1/models", timeout=5.0)
    assert response.status_code == 200, f"the NMP emulator at {nmp_url} answers {response}"
    return nmp_url.rstrip("/")


@pytest.fixture(
    params=[
        pytest.param(RECORDED, marks=pytest.mark.unit),
        pytest.param(LIVE, marks=pytest.mark.integration),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def live(backend: str) -> bool:
    return backend == LIVE


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest) -> NmpSettings:
    if backend == RECORDED:
        return NmpSettings(retry_backoff_s=0)
    url = request.getfixturevalue("live_nmp_url")
    # A fresh namespace per test keeps reruns against a long-lived emulator independent.
    return NmpSettings(
        nemo_base_url=url,
        nim_base_url=url,
        datastore_base_url=url,
        namespace=f"ct-{uuid.uuid4().hex[:10]}",
        retry_backoff_s=0.05,
    )


@pytest.fixture
def wire(backend: str, settings: NmpSettings) -> RecordingTransport:
    inner: httpx.AsyncBaseTransport = (
        RecordedNmp(settings).transport() if backend == RECORDED else httpx.AsyncHTTPTransport()
    )
    return RecordingTransport(inner)


@pytest.fixture
async def nmp(settings: NmpSettings, wire: RecordingTransport) -> AsyncIterator[NmpClient]:
    async with NmpClient(settings, transport=wire) as client:
        yield client
    sdk_problems(wire)


# Data Store calls speak the Hugging Face Hub protocol (huggingface_hub is their oracle, in the
# emulator's test_hf_hub.py); the SDK has no types for them.
_HUB_PREFIXES = ("/v1/hf/", "/v1/datastore/")


def sdk_problems(wire: RecordingTransport) -> None:
    """Every JSON body the client sent in a test is one the official SDK could have sent."""
    problems = [
        problem
        for sent in wire.sent
        if sent.method in {"POST", "PUT", "PATCH"} and not sent.url.path.startswith(_HUB_PREFIXES)
        for problem in request_problems(
            sent.method, sent.url.path, sent.json() if sent.content else None
        )
    ]
    assert problems == [], "\n".join(problems)


@pytest.fixture
async def teardown() -> AsyncIterator[AsyncExitStack]:
    """Undo what a test created (deployments hold the emulator's few GPUs), even when it fails."""
    async with AsyncExitStack() as stack:
        yield stack
