"""How a service reaches Elasticsearch securely: its URL, API key or basic auth, and TLS trust.

Services subclass `ElasticsearchConnection` for their own Elasticsearch group, so its fields sit
beside theirs under the same prefix (``FLYWHEEL_INGEST_ELASTICSEARCH__API_KEY``,
``..._API_KEY_FILE``, ``..._USERNAME``, ``..._PASSWORD``, ``..._PASSWORD_FILE``,
``..._CA_BUNDLE``, ``..._VERIFY_CERTS``), and build their client with
``AsyncElasticsearch(**settings.client_kwargs(), ...)``: the one place where credentials and
trust become client arguments (elasticsearch-py 7.17's).

Secrets are `SecretStr` (masked in reprs) and may come from mounted files, read with the kit's
`secrets` helpers when the client is built; this module never imports elasticsearch, so the kit
does not depend on it.
"""

from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from flywheel_contracts.runtime.secrets import check_one_source, secret

_log = structlog.get_logger("flywheel.elasticsearch")


class ElasticsearchConnection(BaseModel):
    """Where Elasticsearch is and how to authenticate to it: an API key or basic auth (never
    both), and the CAs to trust for HTTPS. Without any, requests go unauthenticated, which only
    suits a cluster without security (the local stack)."""

    # A refused value is never echoed: it may be a key or a password.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: SecretStr = Field(
        SecretStr("http://127.0.0.1:9200"),
        description="May carry credentials (`https://user:pass@host:9200`), hence secret; "
        "prefer API_KEY or USERNAME/PASSWORD, which cannot be combined with them.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="An Elasticsearch API key: its base64 `encoded` form, or `id:api_key`; sent "
        "as `Authorization: ApiKey ...`.",
    )
    api_key_file: Path | None = Field(
        None,
        description="A file holding the API key (a mounted secret), read when the client is "
        "built (at start); instead of `api_key`.",
    )
    username: str | None = Field(
        None, min_length=1, description="Basic auth's user, with `password` or `password_file`."
    )
    password: SecretStr | None = Field(None, description="Basic auth's password.")
    password_file: Path | None = Field(
        None,
        description="A file holding the password (a mounted secret), read when the client is "
        "built (at start); instead of `password`.",
    )
    ca_bundle: Path | None = Field(
        None,
        description="PEM file of the CAs trusted for an https URL; default the system's "
        "(certifi's).",
    )
    verify_certs: bool = Field(
        True,
        description="Verify the server's certificate and host name. Off only for a test cluster: "
        "anyone on the path could then read the credentials.",
    )

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        check_one_source("API_KEY", self.api_key, self.api_key_file)
        check_one_source("PASSWORD", self.password, self.password_file)
        has_password = self.password is not None or self.password_file is not None
        has_key = self.api_key is not None or self.api_key_file is not None
        if has_password and self.username is None:
            raise ValueError("a PASSWORD (or PASSWORD_FILE) needs a USERNAME")
        if self.username is not None and not has_password:
            raise ValueError("USERNAME needs a PASSWORD or PASSWORD_FILE")
        if self.username is not None and ":" in self.username:
            raise ValueError("USERNAME cannot contain ':' (basic auth separates it with one)")
        if has_key and self.username is not None:
            raise ValueError("set an API key or basic auth (USERNAME/PASSWORD), not both")
        parts = urlsplit(self.url.get_secret_value())
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            # The URL itself is not quoted: it may carry credentials.
            raise ValueError("URL must be an http(s) URL with a host")
        if (parts.username or parts.password) and (has_key or self.username is not None):
            # The client would send one and silently drop the other.
            raise ValueError("the URL carries credentials: do not also set an API key or USERNAME")
        if self.ca_bundle is not None and parts.scheme != "https":
            # Trusting a CA suggests TLS is expected; an http URL would quietly go without it.
            raise ValueError("CA_BUNDLE is set but the URL is not https")
        if self.ca_bundle is not None and not self.verify_certs:
            raise ValueError("CA_BUNDLE is set but VERIFY_CERTS is off: nothing would be checked")
        return self

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url.get_secret_value()).scheme == "https"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `AsyncElasticsearch` (7.17): `hosts`, and `api_key` or
        `http_auth`, `verify_certs`, `ca_certs` and `ssl_show_warn` as configured.

        Secret files are read now, so call it where the client is built. Raises SecretFileError
        (naming the file, never its content) or ValueError for an unreadable CA bundle. The
        result holds secrets in clear: pass it to the client, never log it.
        """
        kwargs: dict[str, Any] = {"hosts": [self.url.get_secret_value()]}
        key = secret(self.api_key, self.api_key_file)
        if key is not None:
            value = key.get_secret_value()
            # `id:api_key` goes as a pair, which the client encodes; the `encoded` form (base64,
            # which has no ':') is sent as given.
            kwargs["api_key"] = tuple(value.split(":", 1)) if ":" in value else value
        password = secret(self.password, self.password_file)
        if self.username is not None and password is not None:
            kwargs["http_auth"] = (self.username, password.get_secret_value())
        if self.ca_bundle is not None:
            if not self.ca_bundle.is_file():
                raise ValueError(f"CA_BUNDLE {self.ca_bundle} is not a readable file")
            kwargs["ca_certs"] = str(self.ca_bundle)
        kwargs["verify_certs"] = self.verify_certs
        if not self.verify_certs and self.uses_tls:
            # Said once, in the service's own log, instead of a Python warning per connection.
            kwargs["ssl_show_warn"] = False
            _log.warning(
                "elasticsearch.tls_unverified",
                host=urlsplit(self.url.get_secret_value()).hostname,
                note="VERIFY_CERTS is off: the server's certificate is not checked",
            )
        return kwargs
