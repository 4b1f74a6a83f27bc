"""Where NMP lives and how patiently we talk to it.

A plain pydantic model, not a BaseSettings: each service nests it in its own settings class, so
it is read from that service's environment (e.g. ``FLYWHEEL_EVALUATOR_NMP__NEMO_BASE_URL``).
"""

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class NmpSettings(BaseModel):
    """Base URLs, namespace, credentials, timeouts and the retry policy of the NMP client."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nemo_base_url: str = Field(
        "http://nemo.test",
        description="Ingress of Entity Store, Customizer, Evaluator and Deployment Management.",
    )
    nim_base_url: str = Field("http://nim.test", description="The NIM proxy (OpenAI-style API).")
    datastore_base_url: str = Field(
        "http://data-store.test", description="NeMo Data Store; its HF-compatible API is at /v1/hf."
    )
    namespace: str = Field(
        "dfwbp",
        min_length=1,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Every NMP resource is created under this namespace.",
    )
    hf_token: SecretStr | None = Field(
        None, description="Bearer token sent to the Data Store only; none is sent when unset."
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    request_timeout_s: float = Field(
        30.0, gt=0, description="Seconds one attempt of an ordinary call may take."
    )
    transfer_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Seconds one attempt may take for uploads, downloads and result archives.",
    )
    retry_attempts: int = Field(
        4, ge=1, le=20, description="Attempts per call, the first included, on retryable errors."
    )
    retry_backoff_s: float = Field(
        0.5, ge=0, description="Delay before the second attempt; doubled for each later one."
    )
    retry_backoff_max_s: float = Field(8.0, ge=0, description="Upper bound of one retry delay.")
    max_connections: int = Field(
        100, ge=1, description="Connection pool size per host (the evaluator fans out chat calls)."
    )

    @field_validator("nemo_base_url", "nim_base_url", "datastore_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {value!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"a base URL takes no query or fragment: {value!r}")
        # Paths are appended to the base, so a trailing slash would double up.
        return value.rstrip("/")
