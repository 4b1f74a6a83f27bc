"""The NMP adapter against the recorded NMP: per-run names, adoption, status, sync, delete."""

import json
from collections.abc import AsyncIterator

import pytest

from flywheel_contracts.runtime.nmp import NmpClient, NmpSettings
from flywheel_contracts.runtime.nmp.testing import RecordedNmp
from flywheel_nim_manager.clients.deployer import NmpDeployer
from flywheel_nim_manager.testing.fakes import candidate

pytestmark = pytest.mark.unit

MODEL = "meta/llama-3.2-1b-instruct"


@pytest.fixture
def nmp() -> RecordedNmp:
    return RecordedNmp()


@pytest.fixture
async def deployer(nmp: RecordedNmp) -> AsyncIterator[NmpDeployer]:
    async with NmpClient(NmpSettings(retry_attempts=1), transport=nmp.transport()) as client:
        yield NmpDeployer(client, default_image_tag="1.8.3", pvc_size="25Gi")


async def test_creates_under_the_given_name_with_the_candidate_spec(
    nmp: RecordedNmp, deployer: NmpDeployer
) -> None:
    await deployer.create("fw-run1-meta-llama", candidate(MODEL, gpus=2, tag="1.9.0"))
    job = nmp.state.deployments["dfwbp/fw-run1-meta-llama"]
    assert job.body["name"] == "fw-run1-meta-llama"
    config = job.body["config"]
    assert isinstance(config, dict)
    assert config["model"] == MODEL
    assert config["nim_deployment"]["gpu"] == 2
    assert config["nim_deployment"]["image_tag"] == "1.9.0"
    assert config["nim_deployment"]["image_name"] == f"nvcr.io/nim/{MODEL}"


async def test_the_default_tag_fills_in(nmp: RecordedNmp, deployer: NmpDeployer) -> None:
    await deployer.create("fw-run1", candidate(MODEL))
    assert json.dumps(nmp.state.deployments["dfwbp/fw-run1"].body).count('"1.8.3"') == 1


async def test_an_existing_deployment_is_adopted(nmp: RecordedNmp, deployer: NmpDeployer) -> None:
    await deployer.create("fw-run1", candidate(MODEL))
    await deployer.create("fw-run1", candidate(MODEL))  # DMS answers 500 "already exists"
    assert list(nmp.state.deployments) == ["dfwbp/fw-run1"]


async def test_two_runs_get_two_deployments_of_one_model(
    nmp: RecordedNmp, deployer: NmpDeployer
) -> None:
    await deployer.create("fw-run1", candidate(MODEL))
    await deployer.create("fw-run2", candidate(MODEL))
    assert sorted(nmp.state.deployments) == ["dfwbp/fw-run1", "dfwbp/fw-run2"]


async def test_status_sync_and_delete(deployer: NmpDeployer) -> None:
    assert await deployer.status("fw-run1") is None
    await deployer.create("fw-run1", candidate(MODEL))
    assert await deployer.status("fw-run1") == "pending"
    assert await deployer.status("fw-run1") == "ready"
    assert MODEL in await deployer.served_models()
    await deployer.delete("fw-run1")
    assert await deployer.status("fw-run1") is None
    await deployer.delete("fw-run1")  # gone already: fine
    await deployer.ping()
