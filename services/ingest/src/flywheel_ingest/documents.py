"""What is stored: a normalized record as canonical JSON, under an id derived from its content.

Canonical JSON (sorted keys, no whitespace, UTF-8) makes equal records equal bytes whatever key
order or spacing the application logged them with, so a redelivered or re-shipped line maps to
the same document id and Elasticsearch keeps a single copy.

The stored document also carries `tools_fingerprint`: a content hash of `request.tools`, so a
reader can leave the tool schemas (most of a tool-calling record's bytes, and the same for a
whole workload) out of its searches and fetch each distinct list once.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from flywheel_contracts.events.records import SourcePosition


def canonical_json(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def document_id(canonical: bytes) -> str:
    """sha256 of the canonical JSON, in hex: 64 characters, well inside Elasticsearch's 512."""
    return hashlib.sha256(canonical).hexdigest()


TOOLS_FINGERPRINT = "tools_fingerprint"
_FINGERPRINT_CHARS = 32  # 128 bits: no two distinct tool lists of a store will ever share one


def tools_fingerprint(fields: dict[str, Any]) -> str | None:
    """sha256 prefix of the canonical JSON of `request.tools`; None when there is no such list."""
    request = fields.get("request")
    tools = request.get("tools") if isinstance(request, dict) else None
    if not isinstance(tools, list):
        return None
    return hashlib.sha256(canonical_json(tools)).hexdigest()[:_FINGERPRINT_CHARS]


def stored_body(fields: dict[str, Any]) -> bytes:
    """The document as stored: the record's canonical JSON with the fingerprint of its tools.
    The field is ingest's: a value the application logged under that name is not kept, so a
    reader can trust it."""
    stored = {key: value for key, value in fields.items() if key != TOOLS_FINGERPRINT}
    fingerprint = tools_fingerprint(stored)
    if fingerprint is not None:
        stored[TOOLS_FINGERPRINT] = fingerprint
    return canonical_json(stored)


@dataclass(frozen=True, slots=True)
class RawLine:
    """One message of the source topic: the line as the application wrote it, and where."""

    value: bytes
    topic: str
    partition: int
    offset: int
    format: str = "record"
    """The producer's shape (`producers.Format`), from the line's `flywheel.format` header."""
    token: str | None = None
    """The scoped intake token it was sent with, from its `flywheel.intake.token` header."""

    def position(self) -> SourcePosition:
        return SourcePosition(topic=self.topic, partition=self.partition, offset=self.offset)


@dataclass(frozen=True, slots=True)
class Document:
    """A record ready for the store; `source` is the raw line it came from, should the store
    refuse it."""

    id: str
    body: bytes
    workload_id: str
    client_id: str
    source: RawLine
