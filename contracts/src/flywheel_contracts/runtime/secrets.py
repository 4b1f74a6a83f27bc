"""Secrets from mounted files (Kubernetes secrets, Docker secrets), read when used.

A service takes each secret either from its environment (a `SecretStr` setting) or from a file
named by a `..._FILE` setting. The file is read at use, not at start, so a rotated secret is
picked up without a restart. Errors name the file, never its content.
"""

from collections.abc import Iterable
from pathlib import Path

from pydantic import SecretStr


class SecretFileError(ValueError):
    """A secret file that cannot be read, or holds nothing."""


def read_secret_file(path: Path) -> SecretStr:
    """The secret in `path`, its trailing newline dropped (`echo` and editors add one, and it is
    never part of a key); SecretFileError when unreadable, not UTF-8 or empty."""
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SecretFileError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"{path} is not UTF-8 text") from None
    if not value.strip():
        raise SecretFileError(f"{path} is empty")
    return SecretStr(value)


def check_one_source(name: str, value: SecretStr | None, file: Path | None) -> None:
    """A settings validator's rule for a secret `name` given directly or as `name`_FILE: not
    both, and not set to blanks (an unset secret in a template is a mistake, not "no secret").
    The message names the settings, never the value."""
    if value is not None and file is not None:
        raise ValueError(f"set {name} or {name}_FILE, not both")
    if value is not None and not value.get_secret_value().strip():
        raise ValueError(f"{name} is set but empty; set it or leave it unset")


def secret(value: SecretStr | None, file: Path | None) -> SecretStr | None:
    """The secret given directly, else the one in `file`, else None."""
    if value is not None:
        return value
    return read_secret_file(file) if file is not None else None


def bearer_headers(key: SecretStr | None, extra: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """`extra` headers plus `Authorization: Bearer <key>` when there is a key, which is then
    the only Authorization (header names are case-insensitive)."""
    headers = dict(extra)
    if key is None:
        return headers
    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    return {**headers, "Authorization": f"Bearer {key.get_secret_value()}"}
