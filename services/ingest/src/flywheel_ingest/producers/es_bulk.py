"""Elasticsearch's bulk protocol, as far as Flywheel's intake speaks it: pure, no I/O.

NeMo Agent Toolkit's Data Flywheel exporter and Elasticsearch log shippers (Filebeat, Fluent
Bit's `es` output, Logstash) write to an Elasticsearch URL. Pointed at ingest they get the
answers they expect: `_bulk` NDJSON (action line, then document line) answered per item in
order, single documents (`_doc`, `_create`) answered 201, errors in Elasticsearch's shape, and
the `X-Elastic-Product` header elasticsearch-py 8 refuses to work without. Flywheel's store is
append-only and content-addressed: `index` and `create` add a record (its `_id` is the id it is
stored under, whatever id the client asked for), `delete` and `update` are refused per item.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from flywheel_ingest.compression import (
    CorruptBody,
    InflatedTooLarge,
    UnsupportedEncoding,
    inflated,
)
from flywheel_ingest.documents import canonical_json, document_id
from flywheel_ingest.validation import LogRecord, Refusal

PRODUCT_HEADER = "X-Elastic-Product"
PRODUCT = "Elasticsearch"
VERSION = "8.17.0"
"""The Elasticsearch version announced: 8.x, which clients of 7.x in compatibility mode and of
8.x (elasticsearch-py 8, Logstash 8, Filebeat 8) accept."""
DEFAULT_INDEX = "flywheel"
"""Echoed when neither the action nor the path names an index."""

ACCEPTED_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/json",
        "application/vnd.elasticsearch+x-ndjson",
        "application/vnd.elasticsearch+json",
    }
)
_COMPATIBLE_JSON = "application/vnd.elasticsearch+json; compatible-with=8"
_WRITES = ("index", "create")
_UNSUPPORTED = ("delete", "update")
_WITH_SOURCE = ("index", "create", "update")
_SHARDS = {"total": 1, "successful": 1, "failed": 0}
_SHOWN = 120

BAD_REQUEST = 400
UNAUTHORIZED = 401
PAYLOAD_TOO_LARGE = 413
UNSUPPORTED_MEDIA_TYPE = 415
TOO_MANY_REQUESTS = 429
UNAVAILABLE = 503
CREATED = 201


class BulkError(Exception):
    """A request answered as a whole with an Elasticsearch error (`status`, `type`, `reason`)."""

    def __init__(
        self,
        status: int,
        error_type: str,
        reason: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.error_type, self.reason)


def error_body(status: int, error_type: str, reason: str) -> dict[str, Any]:
    """Elasticsearch's error answer, which its clients parse into their exceptions."""
    cause = {"type": error_type, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


@dataclass(frozen=True, slots=True)
class Action:
    """One bulk action: its verb, the index and id it names, and its document line."""

    verb: str
    index: str
    id: str | None
    source: bytes | None


def answer_type(accept: str | None) -> str:
    """The answer's content type: Elasticsearch's compatible JSON when the client asked for it
    (elasticsearch-py 8 does, and checks), plain JSON otherwise."""
    if accept and "application/vnd.elasticsearch+json" in accept.lower():
        return _COMPATIBLE_JSON
    return "application/json"


def check_media_type(kind: str | None) -> None:
    """`kind` is the request's media type without parameters (None: not given, read as NDJSON)."""
    if kind is not None and kind not in ACCEPTED_TYPES:
        raise BulkError(
            UNSUPPORTED_MEDIA_TYPE,
            "media_type_header_exception",
            f"Content-Type header [{kind}] is not supported; send one of "
            f"{', '.join(sorted(ACCEPTED_TYPES))}",
        )


def decode_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent, gunzipped when `Content-Encoding: gzip`, never more than `limit` bytes
    (a small gzip body can unpack to gigabytes)."""
    if len(body) > limit:
        raise BulkError(
            PAYLOAD_TOO_LARGE, "content_too_long_exception", f"the body exceeds {limit} bytes"
        )
    try:
        return inflated(body, encoding, limit)
    except InflatedTooLarge as exc:
        raise BulkError(PAYLOAD_TOO_LARGE, "content_too_long_exception", str(exc)) from None
    except UnsupportedEncoding as exc:
        raise BulkError(UNSUPPORTED_MEDIA_TYPE, "illegal_argument_exception", str(exc)) from None
    except CorruptBody as exc:
        raise BulkError(BAD_REQUEST, "parse_exception", str(exc)) from None


def parse_bulk(body: bytes, path_index: str | None) -> list[Action]:
    """The actions of a bulk body. A malformed action line fails the whole request, as in
    Elasticsearch; a document line is kept as sent, for ingest to judge."""
    lines = [
        (number, line.removesuffix(b"\r"))
        for number, line in enumerate(body.split(b"\n"), start=1)
        if line.strip()
    ]
    actions: list[Action] = []
    position = 0
    while position < len(lines):
        number, line = lines[position]
        verb, meta = _action(number, line)
        position += 1
        source: bytes | None = None
        if verb in _WITH_SOURCE:
            if position == len(lines):
                raise BulkError(
                    BAD_REQUEST,
                    "illegal_argument_exception",
                    f"The bulk request's {verb} action on line [{number}] has no document line",
                )
            source = lines[position][1]
            position += 1
        index = meta.get("_index") if isinstance(meta.get("_index"), str) else None
        doc_id = meta.get("_id")
        actions.append(
            Action(
                verb,
                index or path_index or DEFAULT_INDEX,
                str(doc_id) if isinstance(doc_id, str | int) else None,
                source,
            )
        )
    if not actions:
        raise BulkError(
            BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        )
    return actions


def _action(number: int, line: bytes) -> tuple[str, dict[str, Any]]:
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BulkError(
            BAD_REQUEST,
            "x_content_parse_exception",
            f"Malformed action/metadata line [{number}]: not JSON ({exc}): {_shown(line)}",
        ) from exc
    expected = "expected one of [create, delete, index, update]"
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise BulkError(
            BAD_REQUEST,
            "illegal_argument_exception",
            f"Malformed action/metadata line [{number}], {expected} as its only key, "
            f"found {_shown(line)}",
        )
    ((verb, meta),) = parsed.items()
    if verb not in (*_WRITES, *_UNSUPPORTED):
        raise BulkError(
            BAD_REQUEST,
            "illegal_argument_exception",
            f"Malformed action/metadata line [{number}], {expected} but found [{verb[:_SHOWN]}]",
        )
    if not isinstance(meta, dict):
        raise BulkError(
            BAD_REQUEST,
            "illegal_argument_exception",
            f"Malformed action/metadata line [{number}], the {verb} action's metadata must be "
            f"an object, found {_shown(line)}",
        )
    return verb, meta


def documents(actions: Sequence[Action]) -> list[bytes]:
    """The document lines of the actions that add a record, in order."""
    return [action.source for action in actions if action.verb in _WRITES and action.source]


def bulk_answer(
    actions: Sequence[Action], verdicts: Sequence[LogRecord | Refusal], took_ms: int
) -> dict[str, Any]:
    """One item per action, in order; `verdicts` are those of `documents(actions)`."""
    remaining = iter(verdicts)
    items: list[dict[str, Any]] = []
    for action in actions:
        if action.verb in _WRITES:
            items.append({action.verb: _item(action, next(remaining))})
        else:
            items.append(
                {
                    action.verb: {
                        "_index": action.index,
                        "_id": action.id,
                        "status": BAD_REQUEST,
                        "error": {
                            "type": "illegal_argument_exception",
                            "reason": f"{action.verb} is not supported: Flywheel keeps every "
                            "record it is sent and changes none (index or create only)",
                        },
                    }
                }
            )
    errors = any(next(iter(item.values()))["status"] >= BAD_REQUEST for item in items)
    return {"took": took_ms, "errors": errors, "items": items}


def _item(action: Action, verdict: LogRecord | Refusal) -> dict[str, Any]:
    if isinstance(verdict, Refusal):
        return {
            "_index": action.index,
            "_id": action.id,
            "status": BAD_REQUEST,
            "error": rejection(verdict),
        }
    return {**created(action.index, verdict), "status": CREATED}


def created(index: str, record: LogRecord) -> dict[str, Any]:
    """Elasticsearch's answer to a document it created, under the id Flywheel stores it by."""
    return {
        "_index": index,
        "_id": document_id(canonical_json(record.fields)),
        "_version": 1,
        "result": "created",
        "_shards": dict(_SHARDS),
        "_seq_no": 0,
        "_primary_term": 1,
    }


def rejection(refusal: Refusal) -> dict[str, str]:
    return {"type": "flywheel_rejection", "reason": f"{refusal.reason.value}: {refusal.message}"}


def cluster_info() -> dict[str, Any]:
    """`GET /`: what clients and shippers read to decide they talk to a compatible server."""
    return {
        "name": "flywheel-ingest",
        "cluster_name": "flywheel",
        "cluster_uuid": "flywheel-ingest",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "flywheel",
            "build_hash": "flywheel",
            "build_date": "2025-01-01T00:00:00.000Z",
            "build_snapshot": False,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


def _shown(line: bytes) -> str:
    text = line.decode("utf-8", "replace")
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}..."
