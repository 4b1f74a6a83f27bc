"""Deployment Management (DMS) on the nemo host: NIM deployments (M1-M3)."""

from collections.abc import AsyncIterator

import httpx

from .http import Call, HostCaller, read, segment
from .listing import every_item
from .models import AlreadyExists, Created, Deployment, NmpObject
from .names import nmp_model_name
from .specs import NimDeploymentSpec

ALREADY_EXISTS_TEXT = "model deployment already exists"


def _deployment_exists(response: httpx.Response) -> bool:
    # DMS reports a duplicate name with this text under a 500 (or any other status).
    return response.status_code == httpx.codes.CONFLICT or ALREADY_EXISTS_TEXT in response.text


class Deployments:
    def __init__(self, nemo: HostCaller, namespace: str) -> None:
        self._http = nemo
        self._ns = namespace

    def _path(self, model_name: str) -> str:
        name = segment(nmp_model_name(model_name))
        return f"/v1/deployment/model-deployments/{segment(self._ns)}/{name}"

    async def create(
        self, model_name: str, spec: NimDeploymentSpec, *, name: str | None = None
    ) -> Created | AlreadyExists:
        """M1: POST /v1/deployment/model-deployments, named after the model (``/`` -> ``-``)
        as the blueprint does, or `name` when a caller deploys one model more than once (e.g.
        once per run). GET and DELETE take that name in place of the model: a name without
        ``/`` maps to itself."""
        body = {
            "name": name or nmp_model_name(model_name),
            "namespace": self._ns,
            "config": {
                "model": model_name,
                "nim_deployment": {
                    "image_name": f"{spec.registry_base}/{model_name}",
                    "image_tag": spec.image_tag,
                    "pvc_size": spec.pvc_size,
                    "gpu": spec.gpus,
                    "additional_envs": spec.additional_envs,
                },
            },
        }
        call = Call("POST", "/v1/deployment/model-deployments", json=body)
        return await self._http.create(call, _deployment_exists)

    def list(self) -> AsyncIterator[Deployment]:
        """GET /v1/deployment/model-deployments in our namespace, every page."""
        path = "/v1/deployment/model-deployments"
        return every_item(self._http, path, Deployment, filters={"namespace": self._ns})

    async def get(self, model_name: str) -> Deployment:
        """M2: GET /v1/deployment/model-deployments/{ns}/{name}; ``status_details.status``."""
        return read(await self._http.send(Call("GET", self._path(model_name))), Deployment)

    async def delete(self, model_name: str) -> NmpObject:
        """M3: DELETE the deployment; DMS answers with a JSON body, read to confirm the delete."""
        return read(await self._http.send(Call("DELETE", self._path(model_name))), NmpObject)
