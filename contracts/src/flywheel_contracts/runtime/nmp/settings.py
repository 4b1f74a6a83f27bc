"""Where NMP lives, how we authenticate to it, and how patiently we talk to it.

A plain pydantic model, not a BaseSettings: each service nests it in its own settings class, so
it is read from that service's environment (e.g. ``FLYWHEEL_EVALUATOR_NMP__NEMO_BASE_URL``,
``FLYWHEEL_EVALUATOR_NMP__API_KEY_FILE``).

Two secrets, each for its own hosts: `api_key` goes to the platform (`nemo_base_url`) and the
NIM proxy (`nim_base_url`) only, `hf_token` to the Data Store only. `ca_bundle` is trusted for
all three.
"""

import ssl
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from flywheel_contracts.runtime.secrets import check_one_source, secret


class NmpSettings(BaseModel):
    """Base URLs, namespace, credentials, timeouts and the retry policy of the NMP client."""

    # A refused value is never echoed: it may be a key.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

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
    api_key: SecretStr | None = Field(
        None,
        description="Sent as `Authorization: Bearer` to the platform (`nemo_base_url`) and the "
        "NIM proxy (`nim_base_url`) only, never to the Data Store or any other host; none is "
        "sent when unset.",
    )
    api_key_file: Path | None = Field(
        None,
        description="A file holding the platform key (a mounted secret), read when a client is "
        "made (at start); instead of `api_key`.",
    )
    ca_bundle: Path | None = Field(
        None,
        description="PEM file of the CAs trusted for every NMP base URL's HTTPS (platform, NIM "
        "proxy, Data Store); default the system's.",
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

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        check_one_source("NMP__API_KEY", self.api_key, self.api_key_file)
        return self

    def platform_key(self) -> SecretStr | None:
        """The platform key, from the environment or its file (read now); SecretFileError,
        naming the file only, when the file cannot be read."""
        return secret(self.api_key, self.api_key_file)

    def tls(self) -> ssl.SSLContext | None:
        """A context trusting `ca_bundle`; None: the default (system) trust."""
        if self.ca_bundle is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def is_nim_proxy(self, base_url: str) -> bool:
        """Whether `base_url` (an OpenAI-compatible base such as `{nim_base_url}/v1`) is on the
        NIM proxy: the same scheme, host and port, at or below its path. Only such a URL may be
        sent the platform key by clients of their own (chat, judge, embeddings)."""
        proxy, other = urlsplit(self.nim_base_url), urlsplit(base_url.rstrip("/"))
        if (proxy.scheme, proxy.netloc.lower()) != (other.scheme, other.netloc.lower()):
            return False
        base = proxy.path.rstrip("/")
        return other.path == base or other.path.startswith(f"{base}/")
