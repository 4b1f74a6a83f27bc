"""Deterministic identifiers, so a redelivered input produces the same ids and resource names."""

import hashlib
import re
from uuid import UUID, uuid5

_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")
_HASH_LEN = 8
_MIN_NAME_LEN = 16


def derive_event_id(cause_id: UUID, event_type: str, discriminator: str = "") -> UUID:
    """The id of the event of `event_type` caused by `cause_id`.

    A handler that emits several events of one type for one cause tells them apart with
    `discriminator` (e.g. the candidate model name).
    """
    return uuid5(cause_id, f"{event_type}\x1f{discriminator}")


def deterministic_name(*parts: str, max_len: int = 63) -> str:
    """A Kubernetes/NMP-safe name (lowercase, `[a-z0-9-]`, at most `max_len`) built from `parts`.

    A name that has to be shortened keeps its head and gets a hash of the full input as suffix,
    so two long inputs that share a prefix still get different names.
    """
    if max_len < _MIN_NAME_LEN:
        raise ValueError(f"max_len must be at least {_MIN_NAME_LEN}, got {max_len}")
    name = _NOT_NAME_CHARS.sub("-", "-".join(parts).lower()).strip("-")
    if not name:
        raise ValueError(f"no name characters in {parts!r}")
    if len(name) <= max_len:
        return name
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:_HASH_LEN]
    head = name[: max_len - _HASH_LEN - 1].rstrip("-")
    return f"{head}-{digest}"
