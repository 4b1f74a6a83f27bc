"""Where the local stack lives and which ports it takes, from FLYWHEEL_STACK_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# deploy/local/src/flywheel_localstack/config.py -> deploy/local and the repository root.
DEPLOY_LOCAL_DIR = Path(__file__).resolve().parents[2]
REPO_ROOT = DEPLOY_LOCAL_DIR.parents[1]
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class StackSettings(BaseSettings):
    """Settings of the local stack; every field can be set as FLYWHEEL_STACK_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_STACK_", frozen=True)

    state_dir: Path = Field(REPO_ROOT / ".stack", description="data, logs and pid files")
    cache_dir: Path = Field(REPO_ROOT / ".cache", description="downloaded jars and builds, reused")
    shipper_dir: Path | None = Field(None, description="folder whose *.jsonl files are shipped")

    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    elasticsearch_port: int = 9200
    elasticsearch_transport_port: int = 9300
    mongo_port: int = 27017
    nmp_port: int = 8700

    nmp_gpus: int = Field(16, description="the emulated cluster's GPU inventory")

    kafka_heap: str = "512m"
    elasticsearch_heap: str = "768m"
    mongo_heap: str = "192m"

    only: str = Field("", description="comma-separated components that `up` starts by default")

    start_timeout_s: float = 120.0
    stop_timeout_s: float = 30.0

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def reports_dir(self) -> Path:
        """HTML run reports and their screenshots."""
        return self.state_dir / "reports"

    @property
    def shipper_folder(self) -> Path:
        return self.shipper_dir or self.state_dir / "shipper"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def elasticsearch_url(self) -> str:
        return f"http://127.0.0.1:{self.elasticsearch_port}"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}"

    @property
    def nmp_url(self) -> str:
        return f"http://127.0.0.1:{self.nmp_port}"
