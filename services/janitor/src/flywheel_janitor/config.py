"""Janitor settings: `FLYWHEEL_JANITOR_*`, nested groups with `__`
(e.g. ``FLYWHEEL_JANITOR_NMP__NEMO_BASE_URL``, ``FLYWHEEL_JANITOR_SWEEPS__ORPHAN_GRACE_S=600``)."""

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from flywheel_contracts.runtime import ServiceSettings
from flywheel_contracts.runtime.nmp import NmpSettings


class ReclaimSettings(BaseModel):
    """How resources are taken back from NMP."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: int = Field(8, ge=1, le=64, description="Resources reclaimed at the same time.")
    gone_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long a deleted deployment or cancelled job may take to be gone before "
        "its reclaim counts as failed.",
    )
    gone_poll_s: float = Field(0.1, gt=0, description="Interval of the is-it-gone checks.")
    poll_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the reclaimer looks for work it was not woken for (tasks of "
        "another instance, or left by a crash).",
    )


class SweepSettings(BaseModel):
    """The periodic checks: stale runs and orphaned NMP resources."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stale_after_s: float = Field(
        3 * 3600.0,
        gt=0,
        description="A run holding resources with no event for this long is reclaimed as stale. "
        "Above the longest silent stretch of a healthy run (a training job waiting for GPUs).",
    )
    stale_interval_s: float = Field(60.0, gt=0, description="How often stale runs are looked for.")
    orphans_enabled: bool = Field(True, description="Whether NMP is swept for unknown resources.")
    orphan_interval_s: float = Field(300.0, gt=0, description="How often NMP is listed.")
    orphan_grace_s: float = Field(
        2 * 3600.0,
        gt=0,
        description="How long a resource may be unknown to the ledger before it is reclaimed. "
        "Above the longest deployment start: nim.up is only published once a NIM is ready.",
    )
    protected_deployments: frozenset[str] = Field(
        frozenset(),
        description="Deployment names in the namespace that are not Flywheel's candidates "
        "(e.g. a local judge NIM) and are never reclaimed as orphans.",
    )


class JanitorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_JANITOR_")

    service_name: str = "janitor"
    http_port: int = Field(8106, ge=0, le=65535)
    nmp: NmpSettings = NmpSettings()
    reclaim: ReclaimSettings = ReclaimSettings()
    sweeps: SweepSettings = SweepSettings()
