"""Customizer settings: `FLYWHEEL_CUSTOMIZER_*`, nested groups with `__`
(e.g. ``FLYWHEEL_CUSTOMIZER_NMP__NEMO_BASE_URL``, ``FLYWHEEL_CUSTOMIZER_JOBS__STALL_TIMEOUT_S``)."""

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from flywheel_contracts.runtime import ServiceSettings
from flywheel_contracts.runtime.nmp import NmpSettings

_HOUR_S = 3600.0


class JobSettings(BaseModel):
    """How the reconciler drives customization jobs. The deadlines follow the blueprint's (one
    hour each); tests shrink them to seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    poll_interval_s: float = Field(
        2.0, gt=0, description="Pause between reconciler passes (NMP status polls)."
    )
    stall_timeout_s: float = Field(
        _HOUR_S,
        gt=0,
        description="A job whose status and progress stay unchanged this long is "
        "cancelled and reported `stalled`.",
    )
    gpu_wait_timeout_s: float = Field(
        _HOUR_S,
        gt=0,
        description="A job still waiting for GPUs (NotEnoughResources) after this "
        "long is cancelled and reported `insufficient_gpus`.",
    )
    model_sync_timeout_s: float = Field(
        _HOUR_S,
        gt=0,
        description="How long a trained model may take to appear on the NIM "
        "proxy before the customization is reported `model_sync_failed`.",
    )
    lease_ttl_s: float = Field(
        60.0,
        gt=0,
        description="Only the instance holding the reconciler lease drives jobs; a "
        "crashed holder is replaced after this long. Keep it above the NMP request timeout.",
    )

    @model_validator(mode="after")
    def _lease_outlives_a_pass(self) -> "JobSettings":
        if self.lease_ttl_s <= self.poll_interval_s:
            raise ValueError(
                "lease_ttl_s must exceed poll_interval_s, or the lease lapses between passes"
            )
        return self


class CustomizerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_CUSTOMIZER_")

    service_name: str = "customizer"
    http_port: int = Field(8105, ge=0, le=65535)
    nmp: NmpSettings = NmpSettings()
    jobs: JobSettings = JobSettings()
