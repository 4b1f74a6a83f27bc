"""Where the local stack lives and which ports it takes, from FLYWHEEL_STACK_* variables."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_localstack.kafka_security import KafkaSecrets
from flywheel_localstack.tls import write_private

# deploy/local/src/flywheel_localstack/config.py -> deploy/local and the repository root.
DEPLOY_LOCAL_DIR = Path(__file__).resolve().parents[2]
REPO_ROOT = DEPLOY_LOCAL_DIR.parents[1]
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
MONGO_USER = "flywheel"


class StackSettings(BaseSettings):
    """Settings of the local stack; every field can be set as FLYWHEEL_STACK_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_STACK_", frozen=True)

    state_dir: Path = Field(REPO_ROOT / ".stack", description="data, logs and pid files")
    cache_dir: Path = Field(REPO_ROOT / ".cache", description="downloaded jars and builds, reused")
    shipper_dir: Path | None = Field(None, description="folder whose *.jsonl files are shipped")

    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_mtls_port: int = Field(9094, description="secured mode's mutual-TLS listener")
    kafka_security: Literal["plaintext", "sasl_ssl"] = Field(
        "plaintext",
        description="sasl_ssl: Kafka listens with SASL over TLS and mutual TLS only, with "
        "credentials generated into its data folder (see kafka_security.py)",
    )
    kafka_shipper_password: SecretStr | None = Field(
        None, description="the log shipper's Kafka password; default: the generated one"
    )
    mongo_auth: bool = Field(
        False,
        description="the database requires user `flywheel` and a password generated into its "
        "data folder (SCRAM-SHA-256); `mongo_url` carries them",
    )
    elasticsearch_port: int = 9200
    elasticsearch_transport_port: int = 9300
    mongo_port: int = 27017
    nmp_port: int = 8700

    nmp_gpus: int = Field(16, description="the emulated cluster's GPU inventory")
    nmp_real_model: bool = Field(
        False,
        description="deployments of the real model (Qwen2.5-Coder-0.5B) in the NMP emulator "
        "start real llama-server processes; installed into the cache on first use",
    )
    nmp_real_training: bool = Field(
        False,
        description="with nmp_real_model: customization jobs of the real model train real LoRA "
        "adapters (PyTorch, transformers, peft: about 2.8 GB, installed into the cache on first "
        "use)",
    )
    nmp_max_train_steps: int | None = Field(
        None, ge=1, description="the emulator's cap on a real training's steps (its default: 60)"
    )

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
    def kafka_secured(self) -> bool:
        return self.kafka_security == "sasl_ssl"

    @property
    def kafka_data_dir(self) -> Path:
        """Each mode keeps its own storage: a secured one holds the SCRAM credentials."""
        return self.data_dir / ("kafka-sasl_ssl" if self.kafka_secured else "kafka")

    def kafka_secrets(self) -> KafkaSecrets | None:
        """Secured mode's credentials (generated on first use); None in plaintext mode."""
        return KafkaSecrets.ensure(self.kafka_data_dir / "secrets") if self.kafka_secured else None

    def kafka_security_fields(self) -> dict[str, str]:
        """How a service or the CLI logs in to this stack's Kafka, as `KafkaSettings` fields
        other than the bootstrap (`FLYWHEEL_<SERVICE>_KAFKA__<FIELD>`); empty in plaintext mode."""
        credentials = self.kafka_secrets()
        return credentials.service_client() if credentials else {}

    def kafka_operator(self) -> KafkaSettings:
        """The stack's own admin client: mutual TLS in secured mode."""
        credentials = self.kafka_secrets()
        if credentials is None:
            return KafkaSettings(bootstrap_servers=self.kafka_bootstrap)
        return KafkaSettings.model_validate(
            {
                "bootstrap_servers": f"127.0.0.1:{self.kafka_mtls_port}",
                **credentials.operator_client(),
            }
        )

    @property
    def elasticsearch_url(self) -> str:
        return f"http://127.0.0.1:{self.elasticsearch_port}"

    @property
    def mongo_url(self) -> str:
        password = self.mongo_secret()
        if password is None:
            return f"mongodb://127.0.0.1:{self.mongo_port}"
        login = f"{MONGO_USER}:{quote(password.get_secret_value(), safe='')}"
        return f"mongodb://{login}@127.0.0.1:{self.mongo_port}/?authSource=admin"

    @property
    def mongo_users_file(self) -> Path:
        """`user:password` lines the database accepts (with `mongo_auth`)."""
        return self.data_dir / "mongo" / "users"

    def mongo_secret(self) -> SecretStr | None:
        """The database password (generated on first use); None without `mongo_auth`."""
        if not self.mongo_auth:
            return None
        if not self.mongo_users_file.exists():
            password = secrets.token_urlsafe(24)
            write_private(self.mongo_users_file, f"{MONGO_USER}:{password}\n".encode())
        line = self.mongo_users_file.read_text().strip()
        return SecretStr(line.split(":", 1)[1])

    @property
    def nmp_url(self) -> str:
        return f"http://127.0.0.1:{self.nmp_port}"
