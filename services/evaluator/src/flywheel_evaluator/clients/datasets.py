"""Eval and ICL files from the NMP Data Store, where the datasets service uploaded them."""

from flywheel_contracts.events import DatasetRef, EvalErrorKind
from flywheel_contracts.runtime.nmp import NmpClient, NmpNotFound
from flywheel_evaluator.dataset import EvalItem, parse_items
from flywheel_evaluator.errors import EvaluationFailed


class DatasetFiles:
    """Downloads a dataset's eval file and parses it into items."""

    def __init__(self, nmp: NmpClient, file_name: str) -> None:
        self._nmp = nmp
        self._file_name = file_name

    async def items(self, dataset: DatasetRef, limit: int) -> list[EvalItem]:
        """The first `limit` usable records; EvaluationFailed when there are none or the file is
        missing, NmpRetryableError (retried by the worker) when the Data Store is unreachable."""
        try:
            content = await self._download(dataset)
        except NmpNotFound as exc:
            raise EvaluationFailed(
                EvalErrorKind.JOB_FAILED,
                f"{dataset.files_url}/{self._file_name} not found in the Data Store",
            ) from exc
        items = parse_items(content)[:limit]
        if not items:
            raise EvaluationFailed(
                EvalErrorKind.JOB_FAILED,
                f"{dataset.files_url}/{self._file_name} holds no usable record",
            )
        return items

    async def _download(self, dataset: DatasetRef) -> bytes:
        if dataset.namespace == self._nmp.settings.namespace:
            return await self._nmp.data_store.download_file(dataset.name, self._file_name)
        # A dataset outside our namespace: a short-lived client bound to its namespace.
        settings = self._nmp.settings.model_copy(update={"namespace": dataset.namespace})
        async with NmpClient(settings) as other:
            return await other.data_store.download_file(dataset.name, self._file_name)
