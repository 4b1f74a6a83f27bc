"""Entity Store on the nemo host: namespaces (D1), dataset registrations (D5-D8, D10), models
(C4, C5)."""

from .errors import NmpNotFound, NmpProtocolError
from .http import Call, HostCaller, is_conflict, is_duplicate_namespace, path_tail, read, segment
from .models import AlreadyExists, Created, DatasetEntity, ModelEntity
from .names import dataset_files_url


class EntityStore:
    def __init__(self, nemo: HostCaller, namespace: str) -> None:
        self._http = nemo
        self._ns = namespace

    def _dataset_path(self, name: str) -> str:
        return f"/v1/datasets/{segment(self._ns)}/{segment(name)}"

    def _registration(self, name: str, description: str, project: str) -> dict[str, str]:
        return {
            "name": name,
            "namespace": self._ns,
            "description": description,
            "files_url": dataset_files_url(self._ns, name),
            "project": project,
        }

    async def create_namespace(self) -> Created | AlreadyExists:
        """D1: POST /v1/namespaces {"id": ns}."""
        call = Call("POST", "/v1/namespaces", json={"id": self._ns})
        return await self._http.create(call, is_duplicate_namespace)

    async def get_dataset(self, name: str) -> DatasetEntity:
        """D5/D8: GET /v1/datasets/{ns}/{name}; NmpNotFound when it is not registered."""
        response = await self._http.send(Call("GET", self._dataset_path(name)))
        return read(response, DatasetEntity)

    async def update_dataset(
        self, name: str, *, description: str = "", project: str = "flywheel"
    ) -> DatasetEntity:
        """D6: PATCH /v1/datasets/{ns}/{name}: the registration's fields, without the name and
        namespace the path already gives (NMP's update body has neither)."""
        registration = self._registration(name, description, project)
        body = {k: v for k, v in registration.items() if k not in ("name", "namespace")}
        call = Call("PATCH", self._dataset_path(name), json=body)
        return read(await self._http.send(call), DatasetEntity)

    async def create_dataset(
        self, name: str, *, description: str = "", project: str = "flywheel"
    ) -> DatasetEntity | AlreadyExists:
        """D7: POST /v1/datasets with the registration."""
        call = Call("POST", "/v1/datasets", json=self._registration(name, description, project))
        result = await self._http.send(call, exists=is_conflict)
        return result if isinstance(result, AlreadyExists) else read(result, DatasetEntity)

    async def register_dataset(
        self, name: str, *, description: str = "", project: str = "flywheel"
    ) -> DatasetEntity:
        """D5 then D6 (registered) or D7 (not yet); a create that races another ends in D6."""
        try:
            await self.get_dataset(name)
        except NmpNotFound:
            created = await self.create_dataset(name, description=description, project=project)
            if not isinstance(created, AlreadyExists):
                return created
        return await self.update_dataset(name, description=description, project=project)

    async def dataset_files_url(self, name: str) -> str:
        """D8: the registered files_url, checked to point at this dataset's Data Store repo."""
        entity = await self.get_dataset(name)
        expected = dataset_files_url(self._ns, name)
        if entity.files_url != expected:
            raise NmpProtocolError(
                f"dataset {name}: files_url {entity.files_url!r} != {expected!r}"
            )
        return entity.files_url

    async def delete_dataset(self, name: str) -> None:
        """D10: DELETE /v1/datasets/{ns}/{name}."""
        await self._http.send(Call("DELETE", self._dataset_path(name)))

    async def get_model(self, model_id: str) -> ModelEntity:
        """C4: GET /v1/models/{model id, slash and @ kept}."""
        response = await self._http.send(Call("GET", f"/v1/models/{path_tail(model_id)}"))
        return read(response, ModelEntity)

    async def delete_model(self, model_id: str) -> None:
        """C5: DELETE /v1/models/{model id}."""
        await self._http.send(Call("DELETE", f"/v1/models/{path_tail(model_id)}"))
