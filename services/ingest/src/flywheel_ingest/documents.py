"""What is stored: a normalized record as canonical JSON, under an id derived from its content.

Canonical JSON (sorted keys, no whitespace, UTF-8) makes equal records equal bytes whatever key
order or spacing the application logged them with, so a redelivered or re-shipped line maps to
the same document id and Elasticsearch keeps a single copy.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from flywheel_contracts.events.records import SourcePosition


def canonical_json(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def document_id(canonical: bytes) -> str:
    """sha256 of the canonical JSON, in hex: 64 characters, well inside Elasticsearch's 512."""
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class RawLine:
    """One message of the source topic: the line as the application wrote it, and where."""

    value: bytes
    topic: str
    partition: int
    offset: int

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
