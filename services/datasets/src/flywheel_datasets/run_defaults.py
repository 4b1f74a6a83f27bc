"""The run configuration, resolved once per run: the defaults file, then the request's overrides.

Everything downstream reads the resolved snapshot from `dataset.ready`, never its own defaults,
so the seed actually used is written into it too: a run without `random_seed` gets one derived
from its run id, and rebuilding or re-reading the run gives the same split.
"""

from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from pydantic import ValidationError

from flywheel_contracts.events import RunRequested
from flywheel_contracts.run_config import RunConfig, RunOverrides
from flywheel_datasets.errors import InvalidRunConfig

# Stand-ins used to check the defaults file on its own, before any run names a workload.
_PROBE_IDS = {"workload_id": "defaults-check", "client_id": "defaults-check"}
_SEED_HEX_DIGITS = 8


class RunDefaults:
    """The deployment's defaults: every RunConfig field except the run's workload and client."""

    def __init__(self, document: dict[str, Any], source: str) -> None:
        if not isinstance(document, dict):
            raise InvalidRunConfig(f"{source}: expected a mapping of run settings")
        unexpected = sorted(_PROBE_IDS.keys() & document.keys())
        if unexpected:
            raise InvalidRunConfig(f"{source}: {', '.join(unexpected)} are chosen per run")
        self._document = document
        self._source = source
        # Fail at startup, not at the first run: the defaults alone must form a valid config.
        _validated(self._document | _PROBE_IDS, source)

    @classmethod
    def load(cls, path: Path | None = None) -> "RunDefaults":
        """`path`, or the defaults shipped with the service."""
        if path is None:
            text = resources.files("flywheel_datasets").joinpath("defaults.yaml").read_text()
            return cls(yaml.safe_load(text), "defaults.yaml (packaged)")
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidRunConfig(f"cannot read the run defaults {path}: {exc}") from exc
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidRunConfig(f"{path} is not valid YAML: {exc}") from exc
        return cls(document, str(path))

    @staticmethod
    def check_overrides(overrides: object) -> None:
        """InvalidRunConfig naming each override outside its type or bounds (a request whose
        overrides failed validation, so it never decoded as a `run.requested`)."""
        try:
            RunOverrides.model_validate(overrides)
        except ValidationError as exc:
            raise InvalidRunConfig(
                f"the run's overrides are invalid: {describe_errors(exc)}"
            ) from exc

    def resolve(self, request: RunRequested, run_id: UUID) -> RunConfig:
        """The run's configuration; InvalidRunConfig names every offending field."""
        base = _validated(
            self._document | {"workload_id": request.workload_id, "client_id": request.client_id},
            self._source,
        )
        try:
            config = base.with_overrides(request.overrides)
        except ValidationError as exc:
            raise InvalidRunConfig(
                f"the run's overrides are invalid: {describe_errors(exc)}"
            ) from exc
        if config.split.random_seed is not None:
            return config
        seed = int(run_id.hex[:_SEED_HEX_DIGITS], 16)
        return config.model_copy(
            update={"split": config.split.model_copy(update={"random_seed": seed})}
        )


def _validated(document: dict[str, Any], source: str) -> RunConfig:
    try:
        return RunConfig.model_validate(document)
    except ValidationError as exc:
        raise InvalidRunConfig(f"{source}: {describe_errors(exc)}") from exc


def describe_errors(exc: ValidationError) -> str:
    """`split.eval_size: ...; candidates.0.gpus: ...`, one clause per error."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'config'}: {error['msg']}"
        for error in exc.errors()
    )
