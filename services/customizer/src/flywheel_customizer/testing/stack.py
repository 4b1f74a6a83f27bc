"""One test's private share of the shared servers: its topics, database and NMP namespace."""

from dataclasses import dataclass
from uuid import uuid4

from pydantic import SecretStr

from flywheel_contracts.runtime import KafkaSettings, MongoSettings
from flywheel_contracts.runtime.nmp import NmpSettings
from flywheel_customizer.config import CustomizerSettings, JobSettings

_ENV_PREFIX = "FLYWHEEL_CUSTOMIZER_"

FAST_JOBS = JobSettings(
    poll_interval_s=0.2,
    stall_timeout_s=60,
    gpu_wait_timeout_s=60,
    model_sync_timeout_s=30,
    lease_ttl_s=3,
)


@dataclass(frozen=True)
class Sandbox:
    prefix: str
    database: str
    namespace: str
    kafka_bootstrap: str
    mongo_url: str
    nmp_url: str

    @classmethod
    def new(cls, *, kafka_bootstrap: str, mongo_url: str, nmp_url: str) -> "Sandbox":
        tag = uuid4().hex[:10]
        return cls(
            prefix=f"t{tag}.",
            database=f"customizer_{tag}",
            namespace=f"t{tag}",
            kafka_bootstrap=kafka_bootstrap,
            mongo_url=mongo_url,
            nmp_url=nmp_url,
        )

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def settings(self, jobs: JobSettings = FAST_JOBS) -> CustomizerSettings:
        return CustomizerSettings(
            group_id=f"flywheel.customizer.{self.prefix}",
            kafka=KafkaSettings(bootstrap_servers=self.kafka_bootstrap, topic_prefix=self.prefix),
            mongo=MongoSettings(url=SecretStr(self.mongo_url), database=self.database),
            nmp=self.nmp_settings(),
            jobs=jobs,
        )

    def nmp_settings(self) -> NmpSettings:
        return NmpSettings(
            nemo_base_url=self.nmp_url,
            nim_base_url=self.nmp_url,
            datastore_base_url=self.nmp_url,
            namespace=self.namespace,
            retry_backoff_s=0.1,
        )

    def environment(self, jobs: JobSettings = FAST_JOBS) -> dict[str, str]:
        """`settings(jobs)` as `FLYWHEEL_CUSTOMIZER_*` variables, for a customizer process."""
        settings = self.settings(jobs)
        env = {f"{_ENV_PREFIX}GROUP_ID": settings.consumer_group}
        for group in ("kafka", "mongo", "nmp", "jobs"):
            values = getattr(settings, group).model_dump(exclude_defaults=True)
            for name, value in values.items():
                text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
                env[f"{_ENV_PREFIX}{group.upper()}__{name.upper()}"] = text
        return env
