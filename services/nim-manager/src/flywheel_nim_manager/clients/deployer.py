"""NMP Deployment Management and the NIM proxy's model list, through the shared NMP client."""

import contextlib

from flywheel_contracts.run_config import CandidateConfig
from flywheel_contracts.runtime.nmp import NimDeploymentSpec, NmpClient, NmpNotFound


class NmpDeployer:
    """The Deployer port on NMP."""

    def __init__(self, nmp: NmpClient, *, default_image_tag: str, pvc_size: str) -> None:
        self._nmp = nmp
        # Named per run (not after the model, as the blueprint does): two runs deploying the
        # same model never share or delete each other's deployment.
        self._deployments = nmp.deployments
        self._default_tag = default_image_tag
        self._pvc_size = pvc_size

    async def create(self, name: str, candidate: CandidateConfig) -> None:
        spec = NimDeploymentSpec(
            image_tag=candidate.tag or self._default_tag,
            gpus=candidate.gpus,
            pvc_size=self._pvc_size,
        )
        await self._deployments.create(candidate.model_name, spec, name=name)

    async def status(self, name: str) -> str | None:
        try:
            return (await self._deployments.get(name)).status
        except NmpNotFound:
            return None

    async def delete(self, name: str) -> None:
        with contextlib.suppress(NmpNotFound):  # gone already: what we wanted
            await self._deployments.delete(name)

    async def served_models(self) -> frozenset[str]:
        return (await self._nmp.nim.list_models()).ids

    async def ping(self) -> None:
        """Readiness: the NIM proxy answers (the same ingress as Deployment Management here)."""
        await self._nmp.nim.list_models()
